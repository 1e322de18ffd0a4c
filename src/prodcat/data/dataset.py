"""Datasets are configuration: which files, which columns, where the images are.

A dataset description is a small YAML file (see ``datasets/``). The source is read into one
normalised frame with the columns ``STANDARD_COLUMNS``, whatever the CSV calls them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, model_validator

from prodcat.config import Settings, get_settings

BUNDLED = Path(__file__).parent / "datasets"
STANDARD_COLUMNS = ["source_row", "product_id", "title", "description", "label", "image_path"]
CHUNK_ROWS = 50_000
MALFORMED = "__malformed__"  # the raw text of a record the CSV parser could not split
# Where a record ends in its file (and its label's, in a labels file): a read can start there.
END_BYTE, LABEL_END_BYTE = "__end_byte__", "__label_end_byte__"
MAX_RAW_CHARS = 10_000  # an unbalanced quote can swallow the rest of a file into one record


class ColumnMap(BaseModel):
    id: str | None = None  # None: ids are derived from the row's content
    title: str
    description: str | None = None
    label: str


class ImageSpec(BaseModel):
    dir: str = "images"
    column: str | None = None  # a column holding a file name, or
    template: str | None = None  # a file name built from the row's columns

    @model_validator(mode="after")
    def _one_source(self) -> ImageSpec:
        if (self.column is None) == (self.template is None):
            raise ValueError("image needs exactly one of 'column' or 'template'")
        return self


class LabelNames(BaseModel):
    file: str
    code_column: str
    name_column: str


class DatasetSpec(BaseModel):
    name: str
    features_file: str
    labels_file: str | None = None  # aligned with features_file row by row (and by index)
    index_column: int | None = None
    columns: ColumnMap
    image: ImageSpec | None = None
    label_names: LabelNames | None = None
    encoding: str = "utf-8"
    # "keep": a row with no label is a listing awaiting a category (batch_predict scores it,
    # training never sees it); "reject": it is refused as missing_label.
    unlabelled_rows: Literal["reject", "keep"] = "reject"


def load_dataset_spec(settings: Settings | None = None) -> DatasetSpec:
    """The configured dataset: a bundled name or a path to a YAML file."""
    name = (settings or get_settings()).data.dataset
    path = Path(name) if name.endswith((".yaml", ".yml")) else BUNDLED / f"{name}.yaml"
    if not path.exists():
        bundled = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
        raise FileNotFoundError(f"dataset {name!r} not found (bundled: {bundled})")
    return DatasetSpec.model_validate(yaml.safe_load(path.read_text()))


def derive_id(title: str, description: str, label: str) -> str:
    """A stable id from a row's content, for sources without an id column."""
    digest = hashlib.sha1("\x1f".join((title, description, label)).encode("utf-8", "replace"))
    return digest.hexdigest()[:20]


class _Lines:
    """The file's lines, remembering those read since the last call to take()."""

    def __init__(self, stream):
        self.stream, self.read = stream, []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.stream)
        self.read.append(line)
        return line

    def take(self) -> str:
        text, self.read = "".join(self.read), []
        return text


def read_records(
    path: Path, spec: DatasetSpec, start_byte: int | None = None
) -> Iterator[tuple[list[str], list[str] | None, str, int]]:
    """(header, fields, raw text, end byte) for each record of a CSV, from start_byte (a
    record's start; None: the first record); fields is None when the record is malformed (a
    field too many or too few, an unbalanced quote), so it can be rejected whole."""
    if not path.exists():
        raise FileNotFoundError(f"dataset {spec.name}: source file {path} does not exist")
    header, position = _read_header(path, spec)
    record_codec = "utf-8" if spec.encoding.lower().replace("_", "-") == "utf-8-sig" else (
        spec.encoding)  # fmt: skip
    position = max(position, start_byte or 0)
    with open(path, "rb") as binary:
        binary.seek(position)
        # surrogateescape keeps broken bytes visible, to reject those rows; encoding a
        # record's text back the same way gives its exact length in bytes.
        stream = io.TextIOWrapper(binary, encoding=record_codec, errors="surrogateescape",
                                  newline="")  # fmt: skip
        lines = _Lines(stream)
        for fields in _records(csv.reader(lines)):
            raw = lines.take()
            position += len(raw.encode(record_codec, "surrogateescape"))
            good = fields is not None and len(fields) == len(header)
            yield header, (fields if good else None), raw, position


def _read_header(path: Path, spec: DatasetSpec) -> tuple[list[str], int]:
    """The header's fields, and the byte where the first record starts."""
    with open(path, encoding=spec.encoding, errors="surrogateescape", newline="") as stream:
        lines = _Lines(stream)
        header = next(csv.reader(lines), None)
        if header is None:
            raise ValueError(f"dataset {spec.name}: source file {path} is empty (no header line)")
        return header, len(lines.take().encode(spec.encoding, "surrogateescape"))


def _records(reader) -> Iterator[list[str] | None]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:  # e.g. a NUL byte, or end of file inside a quoted field
            yield None


def _read_chunks(
    path: Path, spec: DatasetSpec, start_byte: int | None = None, rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Chunks of `rows` records from start_byte, every column as text, a malformed one as its
    raw text in the column MALFORMED (and empty fields), each with its END_BYTE."""
    chunk: list[list] = []
    header: list[str] = []
    for header, fields, raw, end in read_records(path, spec, start_byte):
        chunk.append([*(fields or [""] * len(header)), None if fields is not None else raw, end])
        if len(chunk) == rows:
            yield pd.DataFrame(chunk, columns=[*header, MALFORMED, END_BYTE], dtype=object)
            chunk = []
    if chunk:
        yield pd.DataFrame(chunk, columns=[*header, MALFORMED, END_BYTE], dtype=object)


@dataclass(frozen=True)
class SourcePosition:
    """Where a read of the source starts: a row, and where that row starts in each file (None:
    unknown, so the files are read from the top and rows counted up to it)."""

    row: int = 0
    features_byte: int | None = None
    labels_byte: int | None = None

    def is_known_for(self, spec: DatasetSpec, row: int) -> bool:
        """Whether a read of spec's files from this row can seek straight to it."""
        labels_known = spec.labels_file is None or self.labels_byte is not None
        return self.row == row and self.features_byte is not None and labels_known


def iter_source(
    spec: DatasetSpec,
    raw_dir: Path,
    start_row: int = 0,
    position: SourcePosition | None = None,
    chunk_rows: int = CHUNK_ROWS,
    only_rows: Sequence[int] | None = None,
) -> Iterator[pd.DataFrame]:
    """The source from start_row on, in chunks of normalised rows, in the source's order. With
    a known position (that of start_row), the files are read from there, not from the top:
    each row's `end_byte` (and `label_end_byte`) is where the next read may start. With
    only_rows (ascending), only those rows are normalised and yielded, and the files are read
    up to the last of them."""
    if only_rows is not None and len(only_rows) == 0:
        return
    seek = position is not None and position.is_known_for(spec, start_row)
    features = _read_chunks(raw_dir / spec.features_file, spec,
                            position.features_byte if seek else None, chunk_rows)  # fmt: skip
    labels = (_read_chunks(raw_dir / spec.labels_file, spec,
                           position.labels_byte if seek else None, chunk_rows)
              if spec.labels_file else None)  # fmt: skip
    offset = start_row if seek else 0
    for chunk in features:
        if labels is not None:
            chunk = _join_labels(chunk, next(labels, None), spec, offset)
        chunk.index = range(offset, offset + len(chunk))
        offset += len(chunk)
        if offset <= start_row:
            continue
        chunk = chunk.iloc[max(0, start_row - chunk.index[0]) :]
        if only_rows is not None:
            chunk = chunk[chunk.index.isin(only_rows)]
        if len(chunk):
            yield normalise(chunk, spec, raw_dir)
        if only_rows is not None and offset > only_rows[-1]:
            return
    if labels is not None and next(labels, None) is not None:
        raise ValueError(f"dataset {spec.name}: {spec.labels_file} has more rows than the "
                         f"{offset} of {spec.features_file}")  # fmt: skip


def _join_labels(
    chunk: pd.DataFrame, labels: pd.DataFrame | None, spec: DatasetSpec, offset: int
) -> pd.DataFrame:
    """The features chunk with the label column of the labels file's matching chunk."""
    if labels is None or len(labels) != len(chunk):
        raise ValueError(
            f"dataset {spec.name}: {spec.features_file} and {spec.labels_file} must have the "
            f"same rows, but from row {offset} on {spec.features_file} has {len(chunk)} and "
            f"{spec.labels_file} has {0 if labels is None else len(labels)}"
        )
    if spec.index_column is not None:
        index = chunk.columns[spec.index_column]
        good = chunk[MALFORMED].isna() & labels[MALFORMED].isna()
        if (
            not chunk.loc[good, index]
            .reset_index(drop=True)
            .equals(labels.loc[good, labels.columns[spec.index_column]].reset_index(drop=True))
        ):
            raise ValueError(f"dataset {spec.name}: features and labels are not aligned")
    malformed = chunk[MALFORMED].fillna(labels[MALFORMED])
    return chunk.assign(**{spec.columns.label: labels[spec.columns.label].to_numpy(),
                           MALFORMED: malformed,
                           LABEL_END_BYTE: labels[END_BYTE].to_numpy()})  # fmt: skip


def normalise(raw: pd.DataFrame, spec: DatasetSpec, raw_dir: Path) -> pd.DataFrame:
    """Map the source's columns onto STANDARD_COLUMNS; keeps the raw row in 'raw'."""
    cols = spec.columns
    for column in [cols.title, cols.label, cols.id, cols.description]:
        if column is not None and column not in raw.columns:
            raise KeyError(f"dataset {spec.name}: column {column!r} not in {list(raw.columns)}")
    out = pd.DataFrame(index=raw.index)
    out["source_row"] = raw.index
    out["title"] = raw[cols.title].str.strip()
    out["description"] = raw[cols.description].str.strip() if cols.description else ""
    out["label"] = raw[cols.label].str.strip()
    if cols.id:
        out["product_id"] = raw[cols.id].str.strip()
    else:
        out["product_id"] = [
            derive_id(t, d, lab)
            for t, d, lab in zip(out["title"], out["description"], out["label"], strict=True)
        ]
    out["image_path"], out["image_error"] = _image_paths(raw, spec, raw_dir)
    out["malformed"] = raw[MALFORMED].to_numpy()
    out["end_byte"] = raw[END_BYTE].to_numpy() if END_BYTE in raw else None
    out["label_end_byte"] = raw[LABEL_END_BYTE].to_numpy() if LABEL_END_BYTE in raw else None
    fields = raw.drop(columns=[c for c in (MALFORMED, END_BYTE, LABEL_END_BYTE) if c in raw])
    out["raw"] = [
        {"line": line[:MAX_RAW_CHARS]} if line is not None else record
        for line, record in zip(raw[MALFORMED], fields.to_dict(orient="records"), strict=True)
    ]
    return out


def _image_paths(
    raw: pd.DataFrame, spec: DatasetSpec, raw_dir: Path
) -> tuple[list[str | None], list[str]]:
    """Each row's image file (None when it has none) and why its image is refused ('' if not).

    A name taken from the CSV must resolve inside the image folder: '../x' or an absolute
    path would otherwise upload any local file to S3.
    """
    if spec.image is None:
        return [None] * len(raw), [""] * len(raw)
    folder = (raw_dir / spec.image.dir).resolve()
    paths: list[str | None] = []
    errors: list[str] = []
    fields = raw.drop(columns=[c for c in (MALFORMED, END_BYTE, LABEL_END_BYTE) if c in raw])
    for record in fields.to_dict(orient="records"):
        try:
            name = (
                record[spec.image.column]
                if spec.image.column
                else spec.image.template.format(**record)
            )
        except (KeyError, IndexError, ValueError):
            name = ""
        path = (folder / name).resolve() if name else None
        inside = path is None or path.is_relative_to(folder)
        errors.append("" if inside else str(name))
        paths.append(str(path) if path is not None and inside and path.is_file() else None)
    return paths, errors


def read_label_names(spec: DatasetSpec, raw_dir: Path) -> dict[str, str] | None:
    """Label code -> name, when the dataset names its labels; None when it does not."""
    if spec.label_names is None:
        return None
    table = pd.read_csv(raw_dir / spec.label_names.file, dtype=str, keep_default_na=False)
    codes = table[spec.label_names.code_column].str.strip()
    return dict(zip(codes, table[spec.label_names.name_column].str.strip(), strict=True))

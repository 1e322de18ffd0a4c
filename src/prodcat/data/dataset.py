"""Datasets are configuration: which files, which columns, where the images are.

A dataset description is a small YAML file (see ``datasets/``). The source is read into one
normalised frame with the columns ``STANDARD_COLUMNS``, whatever the CSV calls them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, model_validator

from prodcat.config import Settings, get_settings

BUNDLED = Path(__file__).parent / "datasets"
STANDARD_COLUMNS = ["source_row", "product_id", "title", "description", "label", "image_path"]
CHUNK_ROWS = 50_000


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


def _read_csv_chunks(path: Path, spec: DatasetSpec) -> Iterator[pd.DataFrame]:
    if not path.exists():
        raise FileNotFoundError(f"dataset {spec.name}: source file {path} does not exist")
    return pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        index_col=spec.index_column,
        encoding=spec.encoding,
        encoding_errors="surrogateescape",  # keep broken bytes visible, to reject those rows
        chunksize=CHUNK_ROWS,
    )


def iter_source(spec: DatasetSpec, raw_dir: Path, start_row: int = 0) -> Iterator[pd.DataFrame]:
    """The source from start_row on, in chunks of normalised rows, in the source's order."""
    features = _read_csv_chunks(raw_dir / spec.features_file, spec)
    labels = _read_csv_chunks(raw_dir / spec.labels_file, spec) if spec.labels_file else None
    offset = 0
    for chunk in features:
        if labels is not None:
            label_chunk = next(labels)
            if spec.index_column is not None and not chunk.index.equals(label_chunk.index):
                raise ValueError(f"dataset {spec.name}: features and labels are not aligned")
            chunk = chunk.assign(**{spec.columns.label: label_chunk[spec.columns.label].values})
        chunk = chunk.reset_index(drop=spec.index_column is None)
        chunk.index = range(offset, offset + len(chunk))
        offset += len(chunk)
        if offset <= start_row:
            continue
        yield normalise(chunk.iloc[max(0, start_row - chunk.index[0]) :], spec, raw_dir)


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
    out["image_path"] = _image_paths(raw, spec, raw_dir)
    out["raw"] = raw.to_dict(orient="records")
    return out


def _image_paths(raw: pd.DataFrame, spec: DatasetSpec, raw_dir: Path) -> list[str | None]:
    if spec.image is None:
        return [None] * len(raw)
    folder = raw_dir / spec.image.dir
    paths: list[str | None] = []
    for record in raw.to_dict(orient="records"):
        try:
            name = (
                record[spec.image.column]
                if spec.image.column
                else spec.image.template.format(**record)
            )
        except KeyError:
            name = ""
        path = folder / name if name else None
        paths.append(str(path) if path is not None and path.is_file() else None)
    return paths


def read_label_names(spec: DatasetSpec, raw_dir: Path) -> dict[str, str] | None:
    """Label code -> name, when the dataset names its labels; None when it does not."""
    if spec.label_names is None:
        return None
    table = pd.read_csv(raw_dir / spec.label_names.file, dtype=str, keep_default_na=False)
    codes = table[spec.label_names.code_column].str.strip()
    return dict(zip(codes, table[spec.label_names.name_column].str.strip(), strict=True))

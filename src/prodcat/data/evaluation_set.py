"""The evaluation set: a seeded, label-stratified sample of the source that training never sees.

It is carved before anything else is ingested, by the first ingestion of an empty dataset or by
reset_data, so no model can ever be trained on its rows.

The carve streams through the source twice, a chunk at a time, so its memory is a chunk's
whatever the source's size: the first pass keeps of each valid row only its number, its label
and a hash of its id, and draws the held-out rows from those; the second pass collects the
drawn rows' content, which is COPYed into evaluation_set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from prodcat.config import Settings
from prodcat.data.dataset import CHUNK_ROWS, DatasetSpec, iter_source
from prodcat.data.validate import Limits, find_rejections
from prodcat.db.copy import copy_rows

log = logging.getLogger(__name__)

EVAL_COLUMNS = ("dataset", "product_id", "title", "description", "label_code", "image_path",
                "source_row")  # fmt: skip


@dataclass(frozen=True)
class Carve:
    """What a carve found: how many rows the source has, and which of them are held out."""

    source_rows: int
    held_out: np.ndarray  # the held-out rows' source_row, ascending


def choose_held_out_rows(
    spec: DatasetSpec,
    settings: Settings,
    label_names: dict[str, str] | None,
    chunk_rows: int = CHUNK_ROWS,
) -> Carve:
    """The first pass: a seeded, label-stratified draw of eval_size valid rows."""
    rows, labels, source_rows = _scan_candidates(spec, settings, label_names, chunk_rows)
    size = settings.data.eval_size
    if size == 0:
        return Carve(source_rows, np.empty(0, dtype=np.int64))
    if size > len(rows) // 2:
        raise ValueError(
            f"eval_size {size} is more than half of the {len(rows)} valid rows of "
            f"{spec.name}; lower PRODCAT_DATA__EVAL_SIZE"
        )
    # The draw on the whole frame would be the same: it depends only on the labels' order.
    _, held_out = train_test_split(
        rows, test_size=size, stratify=labels, random_state=settings.data.seed
    )
    return Carve(source_rows, np.sort(held_out))


def _scan_candidates(
    spec: DatasetSpec, settings: Settings, label_names: dict[str, str] | None, chunk_rows: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows that may be held out (valid, the first of their id, of a label that has two
    such rows or more), in source order, with their labels' ranks in sorted order (so as to
    stratify as the labels themselves would); and the source's row count."""
    limits = Limits(settings.data.max_title_chars, settings.data.max_description_chars)
    known = set(label_names) if label_names else None
    vocabulary: dict[str, int] = {}
    parts = [(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.uint64))]
    source_rows = 0
    for chunk in iter_source(spec, settings.data.raw_dir, chunk_rows=chunk_rows):
        # Ids repeated within the chunk are marked here, those repeated across chunks below.
        valid = chunk[find_rejections(chunk, limits, known, set()) == ""]
        parts.append(_compact(valid, vocabulary))
        source_rows += len(chunk)
        log.info("%s: evaluation set carve, pass 1: %d source rows read", spec.name, source_rows)
    rows, codes, id_hashes = (np.concatenate(column) for column in zip(*parts, strict=True))
    first = np.zeros(len(rows), dtype=bool)
    first[np.unique(id_hashes, return_index=True)[1]] = True
    ranks = np.argsort(np.argsort(np.array(list(vocabulary), dtype=object)))
    labels = ranks[codes[first]]
    # Stratifying needs two rows per label; rarer labels stay in the stream.
    common = np.bincount(labels)[labels] >= 2
    return rows[first][common], labels[common], source_rows


def _compact(
    valid: pd.DataFrame, vocabulary: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk's valid rows as source rows, label codes (into vocabulary) and id hashes.

    Two ids with one hash would only leave a valid row out of the draw, never let a repeat in."""
    codes, uniques = pd.factorize(valid["label"])
    mapping = np.array([vocabulary.setdefault(u, len(vocabulary)) for u in uniques], np.int32)
    return (
        valid["source_row"].to_numpy(np.int64),
        mapping[codes],
        pd.util.hash_array(valid["product_id"].to_numpy(object)),
    )


def iter_held_out_rows(
    spec: DatasetSpec, raw_dir: Path, held_out: np.ndarray, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The second pass: the held-out rows (ascending source_row), chunk by chunk; the source
    is read up to the last of them, and only they are normalised."""
    collected = 0
    for rows in iter_source(spec, raw_dir, chunk_rows=chunk_rows, only_rows=held_out):
        collected += len(rows)
        log.info("%s: evaluation set carve, pass 2: %d of %d held-out rows collected",
                 spec.name, collected, len(held_out))  # fmt: skip
        yield rows


def store_evaluation_set(
    cur, spec: DatasetSpec, settings: Settings, label_names: dict[str, str] | None
) -> tuple[int, int]:
    """Carve the evaluation set from the source and COPY it with the cursor `cur` (the
    caller's transaction); returns (source rows, held-out rows)."""
    carve = choose_held_out_rows(spec, settings, label_names)
    for rows in iter_held_out_rows(spec, settings.data.raw_dir, carve.held_out):
        copy_rows(cur, "evaluation_set", EVAL_COLUMNS,
                  ((spec.name, r.product_id, r.title, r.description, r.label, r.image_path,
                    r.source_row) for r in rows.itertuples()))  # fmt: skip
    log.info("%s: %d of %d source rows held out as the evaluation set",
             spec.name, len(carve.held_out), carve.source_rows)  # fmt: skip
    return carve.source_rows, len(carve.held_out)


def has_evaluation_set(cur, dataset: str) -> bool:
    """Whether the dataset's evaluation set was carved."""
    cur.execute("select exists (select 1 from evaluation_set where dataset = %s)", (dataset,))
    return bool(cur.fetchone()[0])

"""Start over: empty prodcat's tables and images bucket, carve the evaluation set, rewind."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import pandas as pd
from psycopg2.extras import execute_values
from sklearn.model_selection import train_test_split

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import DatasetSpec, iter_source, load_dataset_spec, read_label_names
from prodcat.data.validate import Limits, find_rejections
from prodcat.db import get_engine
from prodcat.db.schema import PRODCAT_TABLES
from prodcat.storage import empty_bucket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResetResult:
    dataset: str
    source_rows: int
    eval_rows: int
    objects_deleted: int

    def as_dict(self) -> dict:
        return asdict(self)


def reset_data(confirm: bool, settings: Settings | None = None) -> ResetResult:
    """Empty prodcat's tables and images bucket, carve a new evaluation set, rewind the stream."""
    if confirm is not True:
        raise ValueError("reset_data deletes all ingested data; run it with confirm=true")
    settings = settings or get_settings()
    spec = load_dataset_spec(settings)
    source = pd.concat(list(iter_source(spec, settings.data.raw_dir)), ignore_index=True)
    label_names = read_label_names(spec, settings.data.raw_dir)
    held_out = carve_evaluation_set(source, spec, settings, label_names)
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            tables = ", ".join(t.name for t in PRODCAT_TABLES)
            cur.execute(f"truncate {tables} restart identity")
            if label_names:
                execute_values(
                    cur, "insert into labels (code, name) values %s", list(label_names.items())
                )
            _insert_evaluation_set(cur, held_out, spec.name)
            cur.execute(
                "insert into ingestion_cursor (dataset, next_row) values (%s, 0)", (spec.name,)
            )
        conn.commit()
    finally:
        conn.close()
    deleted = empty_bucket(settings.s3.images_bucket, settings)
    log.info(
        "reset %s: %d source rows, %d held out for evaluation, %d images deleted",
        spec.name, len(source), len(held_out), deleted,
    )  # fmt: skip
    return ResetResult(spec.name, len(source), len(held_out), deleted)


def carve_evaluation_set(
    source: pd.DataFrame,
    spec: DatasetSpec,
    settings: Settings,
    label_names: dict[str, str] | None,
) -> pd.DataFrame:
    """A seeded, label-stratified sample of valid rows that training must never see."""
    limits = Limits(settings.data.max_title_chars, settings.data.max_description_chars)
    reasons = find_rejections(source, limits, set(label_names) if label_names else None, set())
    valid = source[reasons == ""]
    # Stratifying needs two rows per label; rarer labels stay in the stream.
    counts = valid["label"].value_counts()
    valid = valid[valid["label"].isin(counts[counts >= 2].index)]
    size = settings.data.eval_size
    if size == 0:
        return valid.iloc[:0]
    if size > len(valid) // 2:
        raise ValueError(
            f"eval_size {size} is more than half of the {len(valid)} valid rows of {spec.name}; "
            "lower PRODCAT_DATA__EVAL_SIZE"
        )
    _, held_out = train_test_split(
        valid, test_size=size, stratify=valid["label"], random_state=settings.data.seed
    )
    return held_out.sort_values("source_row")


def _insert_evaluation_set(cur, held_out: pd.DataFrame, dataset: str) -> None:
    values = [
        (dataset, r.product_id, r.title, r.description, r.label, r.image_path, int(r.source_row))
        for r in held_out.itertuples()
    ]
    execute_values(
        cur,
        """insert into evaluation_set
           (dataset, product_id, title, description, label_code, image_path, source_row)
           values %s""",
        values,
        page_size=1000,
    )

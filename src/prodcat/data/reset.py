"""Start over: empty prodcat's tables and images bucket, carve the evaluation set, rewind."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from psycopg2.extras import execute_values

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec, read_label_names
from prodcat.data.evaluation_set import store_evaluation_set
from prodcat.data.ingest import RESET_LOCK
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
    label_names = read_label_names(spec, settings.data.raw_dir)
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            # Session-wide, so it outlives the commit: batches wait until the bucket is empty.
            cur.execute("select pg_advisory_lock(%s)", (RESET_LOCK,))
            source_rows, eval_rows = _refill_tables(cur, spec, settings, label_names)
        conn.commit()
        deleted = empty_bucket(settings.s3.images_bucket, settings)
    finally:
        conn.invalidate()  # closing the session releases the lock, whatever happened
    log.info(
        "reset %s: %d source rows, %d held out for evaluation, %d images deleted",
        spec.name, source_rows, eval_rows, deleted,
    )  # fmt: skip
    return ResetResult(spec.name, source_rows, eval_rows, deleted)


def _refill_tables(cur, spec, settings: Settings, label_names: dict | None) -> tuple[int, int]:
    """Empty prodcat's tables, store labels and the evaluation set, rewind the cursor."""
    tables = ", ".join(t.name for t in PRODCAT_TABLES)
    # Batch ids keep counting: a champion's snapshot.max_batch_id from before the reset
    # must stay below every batch loaded after it, or its backlog would read 0.
    cur.execute(f"truncate {tables}")
    if label_names:
        execute_values(cur, "insert into labels (code, name) values %s", list(label_names.items()))
    source_rows, eval_rows = store_evaluation_set(cur, spec, settings, label_names)
    cur.execute("insert into ingestion_cursor (dataset, next_row) values (%s, 0)", (spec.name,))
    return source_rows, eval_rows

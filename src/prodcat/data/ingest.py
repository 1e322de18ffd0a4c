"""Incremental ingestion: the next batch of source rows into PostgreSQL, images into S3.

Exactly once: a run takes a row lock on the dataset's cursor, so overlapping runs queue; a
batch is one transaction, so a failure leaves nothing behind; partial unique indexes on
(dataset, run_key) and (dataset, start_row), and the products' keys, refuse any second load.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from psycopg2.extras import execute_values

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import (
    DatasetSpec,
    SourcePosition,
    iter_source,
    load_dataset_spec,
    read_label_names,
)
from prodcat.data.evaluation_set import has_evaluation_set, store_evaluation_set
from prodcat.data.validate import Limits, describe_rejection, find_rejections, safe_text
from prodcat.db import get_engine
from prodcat.db.copy import copy_rows
from prodcat.metrics import incr_metric, record_timing
from prodcat.storage import get_s3_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    batch_id: int | None
    dataset: str
    start_row: int
    end_row: int
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rows_with_image: int
    rows_without_image: int
    already_loaded: bool = False

    @property
    def exhausted(self) -> bool:
        return self.rows_read == 0 and not self.already_loaded

    def as_dict(self) -> dict:
        return asdict(self)


# reset_data holds this advisory lock alone from its truncate until its images bucket is
# empty; each batch holds it shared, so no batch uploads images that a reset then deletes.
RESET_LOCK = 0x70726F64
PRODUCT_COLUMNS = ("dataset", "product_id", "title", "description", "label_code", "image_key",
                   "source_row", "batch_id")  # fmt: skip
REJECT_COLUMNS = ("dataset", "batch_id", "source_row", "reason", "detail", "raw")


def ingest_pending(
    run_key: str, logical_date: datetime | None = None, settings: Settings | None = None
) -> dict:
    """The next batch; with PRODCAT_DATA__CATCH_UP, every batch left. Totals as a dict.

    Catch-up batches take the run keys run_key, run_key+1, ..., so a rerun loads nothing twice.
    """
    settings = settings or get_settings()
    results = [ingest_next_batch(run_key, logical_date, settings)]
    while settings.data.catch_up and not results[-1].exhausted:
        results.append(ingest_next_batch(f"{run_key}+{len(results)}", logical_date, settings))
    loaded = [r for r in results if r.batch_id is not None]
    if settings.data.catch_up:
        log.info("caught up: %d batches, %d rows accepted", len(loaded),
                 sum(r.rows_accepted for r in loaded))  # fmt: skip
    totals = {f: sum(getattr(r, f) for r in loaded)
              for f in ("rows_read", "rows_accepted", "rows_rejected")}  # fmt: skip
    return {"batches": [r.batch_id for r in loaded], **totals}


def ingest_next_batch(
    run_key: str,
    logical_date: datetime | None = None,
    settings: Settings | None = None,
) -> BatchResult:
    """Load the next batch of rows not yet ingested; the same run_key a second time is a no-op."""
    settings = settings or get_settings()
    spec = load_dataset_spec(settings)
    started = time.perf_counter()
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            position = _lock_cursor(cur, spec.name)
            next_row = position.row
            done = _find_batch(cur, spec.name, run_key)
            if done is not None:
                conn.rollback()
                log.info("run %s already loaded batch %s; nothing to do", run_key, done.batch_id)
                return done
            if next_row == 0 and settings.data.eval_size and not has_evaluation_set(cur, spec.name):
                # The first ingestion of an empty dataset: hold out the evaluation set first.
                label_names = read_label_names(spec, settings.data.raw_dir)
                store_evaluation_set(cur, spec, settings, label_names)
            result = _load_batch(cur, spec, settings, run_key, logical_date, position)
        conn.commit()
    except Exception as error:
        conn.rollback()
        _record_failure(settings, spec.name, run_key, logical_date, error)
        raise
    finally:
        conn.close()
    _report(result, time.perf_counter() - started)
    return result


def _lock_cursor(cur, dataset: str) -> SourcePosition:
    cur.execute("select pg_advisory_xact_lock_shared(%s)", (RESET_LOCK,))
    cur.execute(
        "insert into ingestion_cursor (dataset) values (%s) on conflict do nothing", (dataset,)
    )
    cur.execute("select next_row, next_byte, next_label_byte from ingestion_cursor "
                "where dataset = %s for update", (dataset,))  # fmt: skip
    return SourcePosition(*cur.fetchone())


def _find_batch(cur, dataset: str, run_key: str) -> BatchResult | None:
    cur.execute(
        """select id, start_row, end_row, rows_read, rows_accepted, rows_rejected,
                  rows_with_image, rows_without_image
           from ingestion_batches
           where dataset = %s and run_key = %s and status = 'succeeded'""",
        (dataset, run_key),
    )
    row = cur.fetchone()
    return None if row is None else BatchResult(row[0], dataset, *row[1:], already_loaded=True)


def _load_batch(
    cur, spec: DatasetSpec, settings: Settings, run_key: str, logical_date,
    position: SourcePosition,
) -> BatchResult:  # fmt: skip
    raw_dir, next_row = settings.data.raw_dir, position.row
    rows, end = _take_rows(cur, spec, raw_dir, position, settings.data.batch_size)
    end_row = end.row
    if rows.empty:  # exhausted: no batch record, so later runs find the same empty end
        _move_cursor(cur, spec.name, end)
        return BatchResult(None, spec.name, next_row, end_row, 0, 0, 0, 0, 0)
    label_names = read_label_names(spec, raw_dir)
    _upsert_labels(cur, label_names)
    cur.execute(
        """insert into ingestion_batches
           (dataset, run_key, status, start_row, end_row, logical_date)
           values (%s, %s, 'succeeded', %s, %s, %s) returning id""",
        (spec.name, run_key, next_row, end_row, logical_date),
    )
    batch_id = cur.fetchone()[0]
    limits = Limits(settings.data.max_title_chars, settings.data.max_description_chars)
    reasons = find_rejections(
        rows, limits, set(label_names) if label_names else None, _existing_ids(cur, spec, rows),
        keep_unlabelled=spec.unlabelled_rows == "keep",
    )  # fmt: skip
    accepted, rejected = rows[reasons == ""], rows[reasons != ""]
    image_keys = _upload_images(accepted, spec.name, settings)
    _insert_products(cur, accepted, image_keys, spec.name, batch_id, label_names is None)
    _insert_rejects(cur, rejected, reasons[reasons != ""], spec.name, batch_id, limits)
    result = BatchResult(
        batch_id, spec.name, next_row, end_row, len(rows), len(accepted), len(rejected),
        sum(k is not None for k in image_keys), sum(k is None for k in image_keys),
    )  # fmt: skip
    cur.execute(
        """update ingestion_batches set rows_read = %s, rows_accepted = %s, rows_rejected = %s,
                  rows_with_image = %s, rows_without_image = %s, finished_at = now()
           where id = %s""",
        (*[getattr(result, f) for f in ("rows_read", "rows_accepted", "rows_rejected")],
         result.rows_with_image, result.rows_without_image, batch_id),
    )  # fmt: skip
    _move_cursor(cur, spec.name, end)
    return result


def _move_cursor(cur, dataset: str, position: SourcePosition) -> None:
    cur.execute(
        "update ingestion_cursor set next_row = %s, next_byte = %s, next_label_byte = %s, "
        "updated_at = now() where dataset = %s",
        (position.row, position.features_byte, position.labels_byte, dataset),
    )


def _take_rows(
    cur, spec: DatasetSpec, raw_dir: Path, start: SourcePosition, size: int
) -> tuple[pd.DataFrame, SourcePosition]:
    """The next `size` source rows from start on, skipping the evaluation set's rows, and
    where the row after them starts. The files are read from start's bytes when known."""
    cur.execute("select source_row from evaluation_set where dataset = %s", (spec.name,))
    held_out = {r[0] for r in cur.fetchall()}
    taken: list[pd.DataFrame] = []
    count, end = 0, start
    for chunk in iter_source(spec, raw_dir, start.row, start, chunk_rows=size):
        end = position_after(chunk)  # held-out rows at the end are passed over once
        chunk = chunk[~chunk["source_row"].isin(held_out)].iloc[: size - count]
        if len(chunk):
            taken.append(chunk)
            count += len(chunk)
        if count >= size:
            end = position_after(chunk)
            break
    empty = pd.DataFrame(columns=["source_row", "product_id", "title", "description", "label"])
    return (pd.concat(taken) if taken else empty), end


def position_after(chunk: pd.DataFrame) -> SourcePosition:
    """Where the row after a chunk's last row starts."""
    last = chunk.iloc[-1]
    label_byte = last["label_end_byte"]
    return SourcePosition(int(last["source_row"]) + 1, int(last["end_byte"]),
                          None if label_byte is None else int(label_byte))  # fmt: skip


def _upsert_labels(cur, label_names: dict[str, str] | None) -> None:
    if label_names:
        execute_values(
            cur,
            "insert into labels (code, name) values %s"
            " on conflict (code) do update set name = excluded.name",
            list(label_names.items()),
        )


def _existing_ids(cur, spec: DatasetSpec, rows: pd.DataFrame) -> set[str]:
    if rows.empty:
        return set()
    ids = [safe_text(i) for i in rows["product_id"].unique()]
    cur.execute(
        "select product_id from products where dataset = %s and product_id = any(%s)"
        " union select product_id from evaluation_set where dataset = %s and product_id = any(%s)",
        (spec.name, ids, spec.name, ids),
    )
    return {r[0] for r in cur.fetchall()}


def _upload_images(accepted: pd.DataFrame, dataset: str, settings: Settings) -> list[str | None]:
    """Upload each accepted row's image under a stable key; a failure raises (and rolls back)."""
    if "image_path" not in accepted or accepted["image_path"].isna().all():
        return [None] * len(accepted)
    client, bucket = get_s3_client(settings), settings.s3.images_bucket
    keys: list[str | None] = []
    for product_id, path in zip(accepted["product_id"], accepted["image_path"], strict=True):
        if not path:
            keys.append(None)
            continue
        suffix = Path(path).suffix.lower()
        key = f"{dataset}/{product_id}{suffix}"
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        client.fput_object(bucket, key, path, content_type=content_type)
        keys.append(key)
    return keys


def _insert_products(
    cur, accepted: pd.DataFrame, image_keys, dataset: str, batch_id: int, new_labels: bool
) -> None:
    if accepted.empty:
        return
    if new_labels:  # no label file: every non-empty code seen is a label
        execute_values(
            cur,
            "insert into labels (code) values %s on conflict do nothing",
            [(c,) for c in accepted["label"].unique() if c],
        )
    rows = (
        (dataset, pid, title, desc, label or None, key, int(src), batch_id)
        for pid, title, desc, label, src, key in zip(
            accepted["product_id"],
            accepted["title"],
            accepted["description"],
            accepted["label"],
            accepted["source_row"],
            image_keys,
            strict=True,
        )
    )
    copy_rows(cur, "products", PRODUCT_COLUMNS, rows)


def _insert_rejects(
    cur, rejected: pd.DataFrame, reasons: pd.Series, dataset: str, batch_id: int, limits: Limits
) -> None:
    if rejected.empty:
        return
    values = []
    for (_, row), reason in zip(rejected.iterrows(), reasons, strict=True):
        raw = {str(k): safe_text(v) for k, v in row["raw"].items()}
        detail = safe_text(describe_rejection(row, reason, limits))
        values.append((dataset, batch_id, int(row["source_row"]), reason, detail, json.dumps(raw)))
    copy_rows(cur, "rejected_rows", REJECT_COLUMNS, values)


def _record_failure(settings: Settings, dataset: str, run_key: str, logical_date, error) -> None:
    """Keep a trace of the failed attempt (its own transaction; the batch itself rolled back)."""
    try:
        with get_engine(settings).begin() as conn:
            conn.exec_driver_sql(
                """insert into ingestion_batches
                   (dataset, run_key, status, start_row, end_row, logical_date, finished_at, error)
                   values (%s, %s, 'failed', 0, 0, %s, now(), %s)""",
                (dataset, run_key, logical_date, f"{type(error).__name__}: {error}"[:2000]),
            )
    except Exception:  # the original error matters more than this trace
        log.exception("could not record the failed batch")


def _report(result: BatchResult, seconds: float) -> None:
    if result.exhausted:
        log.info("source %s is exhausted at row %d: no new rows", result.dataset, result.end_row)
    else:
        log.info(
            "batch %s: rows %d-%d read %d, accepted %d, rejected %d, images %d (none: %d) in %.2fs",
            result.batch_id, result.start_row, result.end_row, result.rows_read,
            result.rows_accepted, result.rows_rejected, result.rows_with_image,
            result.rows_without_image, seconds,
        )  # fmt: skip
    incr_metric("ingest.rows_read", result.rows_read)
    incr_metric("ingest.rows_accepted", result.rows_accepted)
    incr_metric("ingest.rows_rejected", result.rows_rejected)
    incr_metric("ingest.images_uploaded", result.rows_with_image)
    record_timing("ingest.batch_duration", seconds)

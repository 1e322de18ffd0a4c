"""Where drift checks read and write: prediction_log windows, drift_reports, the reference
cache and the HTML reports in S3."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pandas as pd
from psycopg2.extras import execute_values

from prodcat.config import Settings
from prodcat.data.training_set import read_frame
from prodcat.db import get_engine

log = logging.getLogger(__name__)
REPORT_FIELDS = (
    "window_name", "run_key", "window_start", "window_end", "after_batch", "up_to_batch",
    "champion_version", "reference_rows", "current_rows", "status", "drift_share",
    "drifted_columns", "columns", "report_key",
)  # fmt: skip


def load_live_window(
    settings: Settings, version: str, start: datetime, end: datetime, rows: int
) -> pd.DataFrame:
    """The newest `rows` predictions of one model version with start < predicted_at <= end."""
    return read_frame(
        settings,
        "select title, description, category_code as predicted_category, confidence "
        "from prediction_log where model_version = :v and not shadow "
        "and predicted_at > :s and predicted_at <= :e "
        "order by predicted_at desc limit :n",
        {"v": version, "s": start, "e": end, "n": rows},
    )


def count_shadow_agreement(settings: Settings, version: str) -> tuple[int, float | None]:
    """How many live inputs a version scored in shadow, and the share where it agreed with
    the champion (None when it scored none)."""
    with get_engine(settings).connect() as conn:
        rows, agreement = conn.exec_driver_sql(
            "select count(*), avg(agrees::int) from prediction_log "
            "where shadow and model_version = %s",
            (version,),
        ).one()
    return int(rows), None if agreement is None else float(agreement)


def find_report(settings: Settings, window: str, run_key: str) -> dict | None:
    """The summary a run already wrote for a window (a retried task reuses its bounds)."""
    rows = _select_reports(settings, "window_name = %s and run_key = %s", (window, run_key))
    return rows[0] if rows else None


def find_previous_decision(settings: Settings, window: str, end: datetime, run_key: str):
    """The latest earlier check of a window that reached a decision (not insufficient data)."""
    rows = _select_reports(
        settings,
        "window_name = %s and window_end <= %s and run_key <> %s "
        "and status <> 'insufficient_data' order by window_end desc, id desc limit 1",
        (window, end, run_key),
    )
    return rows[0] if rows else None


def find_latest_reports(settings: Settings) -> list[dict]:
    """The most recent summary of each window."""
    return _select_reports(
        settings,
        "id in (select distinct on (window_name) id from drift_reports "
        "order by window_name, window_end desc, id desc) order by window_name",
        (),
    )


def _select_reports(settings: Settings, where: str, params: tuple) -> list[dict]:
    fields = ", ".join((*REPORT_FIELDS, "retrain_triggered", "created_at"))
    with get_engine(settings).connect() as conn:
        result = conn.exec_driver_sql(f"select {fields} from drift_reports where {where}", params)
        return [dict(row._mapping) for row in result]


def save_report(settings: Settings, summary: dict) -> None:
    """Insert a window's summary, or replace the one the same run wrote before."""
    values = [json.dumps(summary[f]) if f == "columns" else summary[f] for f in REPORT_FIELDS]
    updates = ", ".join(f"{f} = excluded.{f}" for f in REPORT_FIELDS[2:])
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql(
            f"insert into drift_reports ({', '.join(REPORT_FIELDS)}) "
            f"values ({', '.join(['%s'] * len(REPORT_FIELDS))}) "
            f"on conflict (window_name, run_key) do update set {updates}",
            tuple(values),
        )


def find_last_trigger(settings: Settings, before: datetime, run_key: str) -> datetime | None:
    """When drift last triggered retraining, at or before a time (another run's check)."""
    with get_engine(settings).connect() as conn:
        return conn.exec_driver_sql(
            "select max(window_end) from drift_reports "
            "where retrain_triggered and window_end <= %s and run_key <> %s",
            (before, run_key),
        ).scalar_one()


def mark_triggered(settings: Settings, run_key: str) -> None:
    """Record that this run's drifted windows triggered retraining (for the cooldown)."""
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql(
            "update drift_reports set retrain_triggered = true "
            "where run_key = %s and status = 'drift'",
            (run_key,),
        )


def was_triggered(settings: Settings, run_key: str) -> bool:
    """Whether this run already decided to trigger retraining (a retried task says it again)."""
    with get_engine(settings).connect() as conn:
        return bool(
            conn.exec_driver_sql(
                "select bool_or(retrain_triggered) from drift_reports where run_key = %s",
                (run_key,),
            ).scalar_one()
        )


def load_reference_outputs(settings: Settings, run_id: str, dataset: str) -> pd.DataFrame:
    """The cached outputs of one trained run on the held-out rows (empty when not cached)."""
    return read_frame(
        settings,
        "select product_id, predicted_category, confidence, oov_share from drift_reference "
        "where run_id = :r and dataset = :d",
        {"r": run_id, "d": dataset},
    )


def save_reference_outputs(
    settings: Settings, run_id: str, version: str, dataset: str, outputs: pd.DataFrame
) -> None:
    """Cache a run's outputs on the held-out rows (a second writer changes nothing)."""
    rows = [
        (run_id, dataset, r.product_id, version, r.predicted_category, float(r.confidence),
         None if pd.isna(r.oov_share) else float(r.oov_share))
        for r in outputs.itertuples()
    ]  # fmt: skip
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            execute_values(
                cur,
                "insert into drift_reference (run_id, dataset, product_id, model_version, "
                "predicted_category, confidence, oov_share) values %s on conflict do nothing",
                rows,
                page_size=1000,
            )
        conn.commit()
    finally:
        conn.close()


def upload_report(settings: Settings, key: str, html: str) -> str:
    """Put an HTML report in the reports bucket; returns its s3:// location."""
    from prodcat.storage import get_s3_client  # not in the API's slim image, which only reads

    data = html.encode("utf-8")
    bucket = settings.s3.reports_bucket
    get_s3_client(settings).put_object(
        bucket, key, io.BytesIO(data), len(data), content_type="text/html; charset=utf-8"
    )
    return f"s3://{bucket}/{key}"


def purge_unreviewed_api_answers(settings: Settings, before: datetime) -> int:
    """Delete the review queue's unreviewed API answers (their text) older than `before`."""
    with get_engine(settings).begin() as conn:
        return conn.exec_driver_sql(
            "delete from review_queue where source = 'api' and reviewed_at is null "
            "and created_at < %s and not exists (select 1 from feedback f "
            "where f.review_id = review_queue.id)",
            (before,),
        ).rowcount


def purge_predictions(settings: Settings, before: datetime, batch_rows: int = 10_000) -> int:
    """Delete prediction_log rows older than `before`, a batch per transaction; returns count."""
    deleted = 0
    while True:
        with get_engine(settings).begin() as conn:
            count = conn.exec_driver_sql(
                "delete from prediction_log where id in (select id from prediction_log "
                "where predicted_at < %s limit %s)",
                (before, batch_rows),
            ).rowcount
        deleted += count
        if count < batch_rows:
            return deleted
        log.info("deleted %d prediction_log rows older than %s so far", deleted, before)

"""The retraining backlog: labelled rows ingested after the champion's training snapshot."""

from __future__ import annotations

import logging

from prodcat.config import Settings, get_settings
from prodcat.db import get_engine
from prodcat.metrics import set_gauge

log = logging.getLogger(__name__)
SNAPSHOT_BATCH_TAG = "snapshot.max_batch_id"


def count_backlog(since_batch_id: int | None, settings: Settings | None = None) -> int:
    """Products ingested in batches after since_batch_id (all of them when None)."""
    with get_engine(settings).connect() as conn:
        row = conn.exec_driver_sql(
            "select count(*) from products where batch_id > %s", (since_batch_id or 0,)
        ).one()
    return int(row[0])


def get_champion_snapshot_batch(settings: Settings | None = None) -> int | None:
    """The highest batch the current champion was trained on; None when there is no champion."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    settings = settings or get_settings()
    client = MlflowClient(settings.mlflow.tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.mlflow.model_name, "champion")
    except MlflowException:
        return None
    value = version.tags.get(SNAPSHOT_BATCH_TAG)
    return int(value) if value is not None else None


def report_backlog(settings: Settings | None = None) -> int:
    """Count the backlog against the champion's snapshot, log it and send it as a gauge."""
    settings = settings or get_settings()
    since = get_champion_snapshot_batch(settings)
    backlog = count_backlog(since, settings)
    log.info("backlog: %d labelled rows after batch %s (the champion's snapshot)", backlog, since)
    set_gauge("ingest.backlog_rows", backlog)
    return backlog

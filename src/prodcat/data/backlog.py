"""The retraining backlog: labelled rows ingested after the champion's training snapshot."""

from __future__ import annotations

import logging

from prodcat.config import Settings, get_settings
from prodcat.data.training_set import count_backlog
from prodcat.metrics import set_gauge

log = logging.getLogger(__name__)


def report_backlog(settings: Settings | None = None) -> int:
    """Count the backlog against the champion's snapshot, log it and send it as a gauge."""
    from prodcat.training.registry import get_champion, get_snapshot_batch

    settings = settings or get_settings()
    since = get_snapshot_batch(get_champion(settings))
    backlog = count_backlog(since, settings)
    log.info("backlog: %d labelled rows after batch %s (the champion's snapshot)", backlog, since)
    set_gauge("ingest.backlog_rows", backlog)
    return backlog

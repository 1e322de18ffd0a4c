"""The retraining backlog: labelled rows ingested, and corrections sent, after the champion's
training snapshot."""

from __future__ import annotations

import logging

from prodcat.config import Settings, get_settings
from prodcat.data.training_set import count_backlog
from prodcat.metrics import set_gauge

log = logging.getLogger(__name__)


def report_backlog(settings: Settings | None = None) -> int:
    """Count the backlog against the champion's snapshot, log it and send it as a gauge."""
    from prodcat.training.registry import get_champion, get_snapshot_batch, get_snapshot_feedback

    settings = settings or get_settings()
    champion = get_champion(settings)
    since = get_snapshot_batch(champion)
    backlog = count_backlog(since, settings, get_snapshot_feedback(champion))
    log.info("backlog: %d labelled rows and corrections after batch %s (the champion's "
             "snapshot)", backlog, since)  # fmt: skip
    set_gauge("ingest.backlog_rows", backlog)
    return backlog

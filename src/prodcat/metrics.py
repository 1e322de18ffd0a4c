"""Pipeline metrics over StatsD (statsd-exporter turns them into Prometheus series).

Every name sent is declared here, so monitoring/statsd/mapping.yml can be checked against it.
"""

from __future__ import annotations

from functools import lru_cache

import statsd

from prodcat.config import get_settings

# name -> (kind, labels): names are relative to the prefix (default "prodcat"); each label is
# one more dotted part of the name sent, e.g. train.trigger.drift or drift.share.new_data.
PIPELINE_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ingest.rows_read": ("counter", ()),
    "ingest.rows_accepted": ("counter", ()),
    "ingest.rows_rejected": ("counter", ()),
    "ingest.images_uploaded": ("counter", ()),
    "ingest.batch_duration": ("timer", ()),
    "ingest.backlog_rows": ("gauge", ()),
    "train.duration": ("timer", ()),
    "train.champion_f1": ("gauge", ()),
    "train.challenger_f1": ("gauge", ()),
    "train.eval_f1": ("gauge", ("version",)),
    "train.champion_version": ("gauge", ()),
    "train.trigger": ("counter", ("reason",)),
    "train.gate": ("counter", ("decision",)),
    "drift.share": ("gauge", ("window",)),
    "drift.detected": ("gauge", ("window",)),
    "drift.column_score": ("gauge", ("window", "column")),
    "batch_predict.scored": ("counter", ()),
    "batch_predict.queued_for_review": ("counter", ()),
    "batch_predict.duration": ("timer", ()),
    "batch_predict.rows_per_second": ("gauge", ()),
}


class _NullClient:
    """Stands in when StatsD is disabled: every call is a no-op."""

    def incr(self, *args, **kwargs) -> None: ...
    def gauge(self, *args, **kwargs) -> None: ...
    def timing(self, *args, **kwargs) -> None: ...


@lru_cache
def get_statsd() -> statsd.StatsClient | _NullClient:
    """The process-wide StatsD client (UDP: sending never blocks or fails loudly)."""
    cfg = get_settings().statsd
    if not cfg.enabled:
        return _NullClient()
    return statsd.StatsClient(cfg.host, cfg.port, prefix=cfg.prefix)


def _check(name: str) -> str:
    """The name, when it is a declared metric followed by exactly its label values."""
    for base, (_, labels) in PIPELINE_METRICS.items():
        if name == base and not labels:
            return name
        if name.startswith(f"{base}.") and name[len(base) + 1 :].count(".") == len(labels) - 1:
            return name
    raise KeyError(f"undeclared pipeline metric {name!r}; add it to PIPELINE_METRICS")


def incr_metric(name: str, count: int = 1) -> None:
    """Add to a declared counter."""
    get_statsd().incr(_check(name), count)


def set_gauge(name: str, value: float) -> None:
    """Set a declared gauge."""
    get_statsd().gauge(_check(name), value)


def record_timing(name: str, seconds: float) -> None:
    """Record a declared timer, in seconds (sent as milliseconds)."""
    get_statsd().timing(_check(name), seconds * 1000)

"""Drift checks, one window at a time, and the decision to retrain.

What is compared with what:
- **Reference.** Text descriptors and labels: a seeded sample of the champion's training
  snapshot (products up to its `snapshot.max_batch_id`). Predicted category, confidence and
  out-of-vocabulary share: the champion's outputs on the held-out evaluation set, computed
  once per trained run and cached in `drift_reference`. On its own training rows a model is
  overconfident (confidence drifted by 0.7-0.8 on data of the same source), and every
  training word is in its vocabulary, so those columns need rows it never saw.
- **new_data.** Listings ingested since the previous decided check (at first: since the
  champion's snapshot): labels, text descriptors, out-of-vocabulary share.
- **live_traffic.** The champion's predictions in `prediction_log` since the previous decided
  check: predicted category and confidence, and the text descriptors when raw text is logged.

A window below `drift.min_rows` is "insufficient data" and stays open: the next check covers
its rows too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pandas as pd

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.data.training_set import find_last_batch, load_batch_range, load_evaluation_frame
from prodcat.drift import store
from prodcat.drift.compare import Comparison, compare_frames
from prodcat.drift.descriptors import Vocabulary
from prodcat.drift.frames import current_frame, predict_outputs, reference_frame, usable_columns
from prodcat.metrics import set_gauge
from prodcat.training.registry import get_champion, get_snapshot_batch, load_version

log = logging.getLogger(__name__)
WINDOWS = ("new_data", "live_traffic")


def check_window(
    window: str, window_end: datetime, run_key: str, settings: Settings | None = None
) -> dict:
    """Check one window ending at window_end; the same run_key again gives the same result.

    Returns the summary stored in drift_reports, with the seconds each stage took.
    """
    if window not in WINDOWS:
        raise ValueError(f"unknown drift window {window!r}; known: {', '.join(WINDOWS)}")
    settings, timer = settings or get_settings(), StageTimer(window)
    with timer("load_champion"):
        champion = get_champion(settings)
        if champion is None:
            log.info("%s: no champion yet, so no reference to compare with; skipped", window)
            return {"window_name": window, "status": "skipped", "reason": "no champion"}
        model = load_version(champion.version, settings)
    with timer("reference_outputs"):
        vocabulary = Vocabulary(model)
        dataset = load_dataset_spec(settings).name
        outputs = load_reference_outputs(settings, dataset, champion, model, vocabulary)
    with timer("read_rows"):
        bounds = find_bounds(settings, window, dataset, window_end, run_key, champion)
        snapshot, rows = read_rows(settings, window, dataset, bounds, champion)
    with timer("descriptors"):
        reference = reference_frame(snapshot, outputs)
        current, wanted = current_frame(window, rows, vocabulary)
    with timer("evidently"):
        columns = usable_columns(reference, current, wanted)
        comparison = compare_frames(reference, current, columns, settings.drift)
    summary = summarise(window, run_key, bounds, champion.version, comparison)
    with timer("upload_report"):
        summary["report_key"] = upload(settings, window, window_end, run_key, comparison)
    with timer("save_summary"):
        store.save_report(settings, summary)
        send_gauges(window, comparison)
    log_summary(summary)
    result = {k: v for k, v in summary.items() if k not in ("window_start", "window_end")}
    return {**result, "seconds": timer.seconds}


class StageTimer:
    """Times the stages of a check and logs each one as it ends (long work shows progress)."""

    def __init__(self, window: str):
        self.window, self.seconds = window, {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - started, 3)
        log.info("%s: %s took %.2fs", self.window, stage, self.seconds[stage])


def upload(settings: Settings, window: str, end: datetime, run_key: str, result) -> str | None:
    """Put the HTML report in S3 (when there is one); returns its key."""
    if result.html is None:
        return None
    key = f"drift/{window}/{end:%Y%m%dT%H%M%S}-{run_key_slug(run_key)}.html"
    location = store.upload_report(settings, key, result.html)
    log.info("%s: the drift report is at %s", window, location)
    return key


def find_bounds(
    settings: Settings, window: str, dataset: str, end: datetime, run_key: str, champion
) -> dict:
    """The window's bounds: those this run stored before, else from the previous decision."""
    done = store.find_report(settings, window, run_key)
    if done is not None:
        return {k: done[k] for k in ("window_start", "window_end", "after_batch", "up_to_batch")}
    previous = store.find_previous_decision(settings, window, end, run_key)
    if window == "live_traffic":
        # Version numbers restart when a registered model is recreated: only predictions made
        # after this version existed can be its own.
        start = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
        if previous is not None:
            start = max(start, previous["window_end"])
        return {"window_start": start, "window_end": end, "after_batch": None, "up_to_batch": None}
    after = max(get_snapshot_batch(champion), previous["up_to_batch"] if previous else 0)
    return {
        "window_start": previous["window_end"] if previous else None,
        "window_end": end,
        "after_batch": after,
        "up_to_batch": find_last_batch(settings, dataset, end),
    }


def read_rows(
    settings: Settings, window: str, dataset: str, bounds: dict, champion
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The snapshot sample (the reference's listings) and the window's rows."""
    cfg = settings.drift
    snapshot = load_batch_range(settings, dataset, 0, get_snapshot_batch(champion),
                                cfg.reference_rows, cfg.seed)  # fmt: skip
    if window == "new_data":
        rows = load_batch_range(settings, dataset, bounds["after_batch"], bounds["up_to_batch"],
                                cfg.current_rows, cfg.seed)  # fmt: skip
    else:
        rows = store.load_live_window(settings, champion.version, bounds["window_start"],
                                      bounds["window_end"], cfg.current_rows)  # fmt: skip
    return snapshot, rows


def load_reference_outputs(
    settings: Settings, dataset: str, champion, model, vocabulary: Vocabulary
) -> pd.DataFrame:
    """The champion's outputs on the held-out rows, computed once per trained run."""
    cached = store.load_reference_outputs(settings, champion.run_id, dataset)
    if cached.empty:
        held_out = load_evaluation_frame(settings, dataset)
        if held_out.empty:
            log.warning("no evaluation set: predicted category and confidence are not checked")
            return cached
        log.info("computing version %s's reference outputs on %d held-out rows",
                 champion.version, len(held_out))  # fmt: skip
        cached = predict_outputs(model, held_out, vocabulary).assign(
            product_id=held_out["product_id"].to_numpy()
        )
        store.save_reference_outputs(settings, champion.run_id, champion.version, dataset, cached)
    return cached


def summarise(window: str, run_key: str, bounds: dict, version: str, result: Comparison) -> dict:
    """The drift_reports row of one check."""
    return {
        "window_name": window, "run_key": run_key, **bounds, "champion_version": version,
        "reference_rows": result.reference_rows, "current_rows": result.current_rows,
        "status": result.status, "drift_share": result.drift_share,
        "drifted_columns": result.drifted_columns, "columns": result.columns,
        "report_key": None,
    }  # fmt: skip


def send_gauges(window: str, result: Comparison) -> None:
    """drift.share, drift.detected and one score per column, tagged by window."""
    if result.status == "insufficient_data":
        return
    set_gauge(f"drift.share.{window}", result.drift_share)
    set_gauge(f"drift.detected.{window}", 1 if result.detected else 0)
    for column, score in result.columns.items():
        set_gauge(f"drift.column_score.{window}.{column}", score["score"])


def log_summary(summary: dict) -> None:
    """One log line: the decision, the drifted columns and the row counts."""
    sizes = f"{summary['current_rows']} current rows vs {summary['reference_rows']} reference rows"
    if summary["status"] == "insufficient_data":
        log.info("%s: insufficient data (%s): no decision", summary["window_name"], sizes)
        return
    drifted = [c for c, s in summary["columns"].items() if s["drifted"]]
    log.info(
        "%s: %s; %d of %d columns drifted (%s); %s", summary["window_name"], summary["status"],
        len(drifted), len(summary["columns"]), ", ".join(drifted) or "none", sizes,
    )  # fmt: skip


def run_key_slug(run_key: str) -> str:
    """A run key fit for an S3 key."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_key)


def decide_retraining(
    results: list[dict], window_end: datetime, run_key: str, settings: Settings | None = None
) -> bool:
    """Trigger retraining when a window drifted, unless drift already did within the cooldown."""
    settings = settings or get_settings()
    drifted = [r["window_name"] for r in results if r.get("status") == "drift"]
    if not drifted:
        log.info("no drift: retraining is not triggered")
        return False
    if store.was_triggered(settings, run_key):
        log.info("this run already triggered retraining for drift in %s", ", ".join(drifted))
        return True
    last = store.find_last_trigger(settings, window_end, run_key)
    cooldown = timedelta(hours=settings.drift.cooldown_hours)
    if last is not None and window_end - last < cooldown:
        log.info("drift in %s, but drift triggered retraining at %s, within the %s cooldown: "
                 "not triggered again", ", ".join(drifted), last, cooldown)  # fmt: skip
        return False
    store.mark_triggered(settings, run_key)
    log.info("drift in %s: triggering ml_pipeline with reason drift", ", ".join(drifted))
    return True


def purge_prediction_log(window_end: datetime, settings: Settings | None = None) -> int:
    """Delete prediction_log rows older than PRODCAT_API__LOG_RETENTION_DAYS."""
    settings = settings or get_settings()
    before = window_end - timedelta(days=settings.api.log_retention_days)
    deleted = store.purge_predictions(settings, before)
    log.info("deleted %d prediction_log rows older than %s", deleted, before)
    expired = store.purge_unreviewed_api_answers(settings, before)
    log.info("deleted %d unreviewed API answers older than %s from the review queue", expired,
             before)  # fmt: skip
    return deleted

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
from datetime import UTC, datetime, timedelta

import pandas as pd

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.data.training_set import find_last_batch, load_batch_range, load_evaluation_frame
from prodcat.drift import store
from prodcat.drift.compare import Comparison, compare_frames
from prodcat.drift.descriptors import DESCRIPTOR_COLUMNS, Vocabulary, describe_texts, join_text
from prodcat.metrics import set_gauge
from prodcat.registry import get_champion, get_snapshot_batch, load_version

log = logging.getLogger(__name__)
WINDOWS = ("new_data", "live_traffic")


def check_window(
    window: str, window_end: datetime, run_key: str, settings: Settings | None = None
) -> dict:
    """Check one window ending at window_end; the same run_key again gives the same result."""
    if window not in WINDOWS:
        raise ValueError(f"unknown drift window {window!r}; known: {', '.join(WINDOWS)}")
    settings = settings or get_settings()
    champion = get_champion(settings)
    if champion is None:
        log.info("%s: no champion yet, so no reference to compare with; skipped", window)
        return {"window_name": window, "status": "skipped", "reason": "no champion"}
    model = load_version(champion.version, settings)
    bounds = find_bounds(settings, window, window_end, run_key, champion)
    reference, current, columns = build_frames(settings, window, bounds, champion, model)
    comparison = compare_frames(reference, current, columns, settings.drift)
    summary = summarise(window, run_key, bounds, champion.version, comparison)
    if comparison.html is not None:
        key = f"drift/{window}/{window_end:%Y%m%dT%H%M%S}-{run_key_slug(run_key)}.html"
        location = store.upload_report(settings, key, comparison.html)
        summary["report_key"] = key
        log.info("%s: the drift report is at %s", window, location)
    store.save_report(settings, summary)
    send_gauges(window, comparison)
    log_summary(summary)
    return {k: v for k, v in summary.items() if k not in ("window_start", "window_end")}


def find_bounds(settings: Settings, window: str, end: datetime, run_key: str, champion) -> dict:
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
    dataset = load_dataset_spec(settings).name
    after = max(get_snapshot_batch(champion), previous["up_to_batch"] if previous else 0)
    return {
        "window_start": previous["window_end"] if previous else None,
        "window_end": end,
        "after_batch": after,
        "up_to_batch": find_last_batch(settings, dataset, end),
    }


def build_frames(
    settings: Settings, window: str, bounds: dict, champion, model
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current frames from the database, and the columns to compare."""
    cfg, dataset = settings.drift, load_dataset_spec(settings).name
    vocabulary = Vocabulary(model)
    snapshot = load_batch_range(settings, dataset, 0, get_snapshot_batch(champion),
                                cfg.reference_rows, cfg.seed)  # fmt: skip
    outputs = load_reference_outputs(settings, dataset, champion, model, vocabulary)
    if window == "new_data":
        rows = load_batch_range(settings, dataset, bounds["after_batch"], bounds["up_to_batch"],
                                cfg.current_rows, cfg.seed)  # fmt: skip
    else:
        rows = store.load_live_window(settings, champion.version, bounds["window_start"],
                                      bounds["window_end"], cfg.current_rows)  # fmt: skip
    reference = reference_frame(snapshot, outputs)
    current, wanted = current_frame(window, rows, vocabulary)
    return reference, current, usable_columns(reference, current, wanted)


def reference_frame(snapshot: pd.DataFrame, outputs: pd.DataFrame) -> pd.DataFrame:
    """Descriptors and labels of the snapshot sample, then the outputs on held-out rows."""
    described = describe_listings(snapshot).assign(label=snapshot["label_code"].to_numpy())
    return pd.concat([described, outputs.drop(columns="product_id")], ignore_index=True)


def current_frame(
    window: str, rows: pd.DataFrame, vocabulary: Vocabulary
) -> tuple[pd.DataFrame, list[str]]:
    """A window's rows as the columns it is checked on, and the names of those columns."""
    if window == "new_data":
        current = add_oov(describe_listings(rows), rows, vocabulary)
        return current.assign(label=rows["label_code"].to_numpy()), [
            *DESCRIPTOR_COLUMNS, "oov_share", "label",
        ]  # fmt: skip
    outputs = rows[["predicted_category", "confidence"]].reset_index(drop=True)
    if rows["title"].isna().all():  # raw text is not logged: the model's outputs only
        return outputs, ["predicted_category", "confidence"]
    rows = rows.fillna({"title": "", "description": ""})
    current = pd.concat([add_oov(describe_listings(rows), rows, vocabulary), outputs], axis=1)
    return current, [*DESCRIPTOR_COLUMNS, "oov_share", "predicted_category", "confidence"]


def usable_columns(reference: pd.DataFrame, current: pd.DataFrame, wanted: list[str]) -> list[str]:
    """The wanted columns that both frames have values for."""
    return [
        c for c in wanted
        if c in reference and reference[c].notna().any() and current[c].notna().any()
    ]  # fmt: skip


def describe_listings(rows: pd.DataFrame) -> pd.DataFrame:
    """Text descriptors of listings with title and description columns."""
    texts = [join_text(t, d) for t, d in zip(rows["title"], rows["description"], strict=True)]
    return describe_texts(texts)


def add_oov(frame: pd.DataFrame, rows: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """The frame with the out-of-vocabulary share of each of its listings."""
    titles, descriptions = rows["title"].fillna(""), rows["description"].fillna("")
    return frame.assign(oov_share=vocabulary.oov_shares(titles.tolist(), descriptions.tolist()))


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


def predict_outputs(model, rows: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Predicted category, confidence and out-of-vocabulary share of each listing."""
    probabilities = model.predict_proba(rows[["title", "description"]])
    outputs = pd.DataFrame({
        "predicted_category": model.classes_[probabilities.argmax(axis=1)].astype(str),
        "confidence": probabilities.max(axis=1),
    })  # fmt: skip
    return add_oov(outputs, rows, vocabulary)


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
    return deleted

"""Nightly batch scoring: the champion categorises every listing awaiting a category.

Idempotent per model version: a listing with a row in `batch_predictions` for the champion's
version is never scored again, so a rerun (or a retry after a crash) scores only what is left.
Each chunk is read, scored and written in its own transaction, with COPY.
"""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import datetime

import numpy as np
import pandas as pd

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.db import get_engine
from prodcat.db.copy import copy_field
from prodcat.metrics import incr_metric, record_timing, set_gauge
from prodcat.operations.review import queue_batch_answers

log = logging.getLogger(__name__)
TOP = 3

# Listings awaiting a category (no label, no correction) the version has not scored yet, in
# keyset order so each chunk starts where the last ended.
UNSCORED = """
select p.product_id, p.title, p.description from products p
where p.dataset = %(d)s and p.label_code is null and p.product_id > %(after)s
  and not exists (select 1 from feedback f
                  where f.dataset = p.dataset and f.product_id = p.product_id)
  and not exists (select 1 from batch_predictions b where b.dataset = p.dataset
                  and b.product_id = p.product_id and b.model_version = %(v)s)
order by p.product_id limit %(n)s
"""


def score_listings(logical_date: datetime, settings: Settings | None = None) -> dict:
    """Score every listing awaiting a category that the champion has not scored; returns
    the version, the rows scored and the rows sent to review."""
    from prodcat.training.registry import get_champion, load_version

    settings = settings or get_settings()
    champion = get_champion(settings)
    if champion is None:
        log.info("no champion yet: nothing to score")
        return {"model_version": None, "scored": 0, "queued_for_review": 0}
    model = load_version(champion.version, settings)
    dataset = load_dataset_spec(settings).name
    totals = {"model_version": champion.version, "scored": 0, "queued_for_review": 0}
    started, after = time.perf_counter(), ""
    while not (chunk := read_unscored(settings, dataset, champion.version, after)).empty:
        frame = predict_top(model, chunk)
        totals["queued_for_review"] += write_chunk(settings, dataset, champion.version, frame,
                                                   logical_date)  # fmt: skip
        totals["scored"] += len(frame)
        after = str(chunk["product_id"].iloc[-1])
        elapsed = time.perf_counter() - started
        log.info("batch_predict: %d listings scored by version %s (%.0f/s)", totals["scored"],
                 champion.version, totals["scored"] / elapsed)  # fmt: skip
    seconds = time.perf_counter() - started
    report(totals, seconds)
    return totals


def read_unscored(settings: Settings, dataset: str, version: str, after: str) -> pd.DataFrame:
    """The next chunk of listings the version has not scored, after a product id."""
    params = {"d": dataset, "v": version, "after": after, "n": settings.batch_predict.chunk_rows}
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(UNSCORED, params)
            rows = cur.fetchall()
    finally:
        conn.close()
    return pd.DataFrame(rows, columns=["product_id", "title", "description"])


def predict_top(model, chunk: pd.DataFrame) -> pd.DataFrame:
    """Each listing's category, confidence and top three (code, probability)."""
    proba = model.predict_proba(chunk[["title", "description"]])
    classes = np.asarray([str(c) for c in model.classes_])
    order = np.argsort(-proba, axis=1)[:, :TOP]
    top = [
        [{"category_code": classes[j], "confidence": round(float(row[j]), 6)} for j in best]
        for row, best in zip(proba, order, strict=True)
    ]
    return chunk.assign(
        category_code=classes[order[:, 0]],
        confidence=proba[np.arange(len(proba)), order[:, 0]],
        top3=top,
    )


def write_chunk(
    settings: Settings, dataset: str, version: str, frame: pd.DataFrame, logical_date: datetime
) -> int:
    """COPY one scored chunk into batch_predictions and queue its doubtful answers, in one
    transaction; returns how many went to review. Rows already there are left alone."""
    buffer = io.StringIO()
    for row in frame.itertuples():
        fields = [dataset, row.product_id, version, row.category_code, repr(row.confidence),
                  json.dumps(row.top3), logical_date.isoformat()]  # fmt: skip
        buffer.write("\t".join(copy_field(f) for f in fields) + "\n")
    buffer.seek(0)
    conn = get_engine(settings).raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("create temp table incoming (like batch_predictions) on commit drop")
            cur.copy_expert("copy incoming from stdin", buffer)
            cur.execute("insert into batch_predictions select * from incoming "
                        "on conflict do nothing")  # fmt: skip
            queued = queue_batch_answers(cur, settings, dataset, version, frame)
        conn.commit()
    finally:
        conn.close()
    return queued


def report(totals: dict, seconds: float) -> None:
    """Log and send the run's figures."""
    rate = totals["scored"] / seconds if seconds > 0 else 0.0
    log.info("batch_predict done: %d listings scored by version %s in %.1fs (%.0f/s), %d sent "
             "to review", totals["scored"], totals["model_version"], seconds, rate,
             totals["queued_for_review"])  # fmt: skip
    incr_metric("batch_predict.scored", totals["scored"])
    incr_metric("batch_predict.queued_for_review", totals["queued_for_review"])
    record_timing("batch_predict.duration", seconds)
    if totals["scored"]:
        set_gauge("batch_predict.rows_per_second", rate)

"""Nightly batch scoring: the champion categorises every listing awaiting a category.

Idempotent per model version: a listing with a row in `batch_predictions` for the champion's
version is never scored again, so a rerun (or a retry after a crash) scores only what is left.
Each chunk is read, scored and written in its own transaction, with COPY.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.db import get_engine
from prodcat.db.copy import copy_field
from prodcat.db.engine import forget_engines_after_fork
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
        totals = {"model_version": None, "scored": 0, "queued_for_review": 0}
        report(totals, 0.0)  # the run is seen on the dashboards all the same
        return totals
    job = ScoringJob(settings, load_dataset_spec(settings).name, champion.version,
                     load_version(champion.version, settings), logical_date)  # fmt: skip
    totals = {"model_version": champion.version, "scored": 0, "queued_for_review": 0}
    started = time.perf_counter()
    for scored, queued in run_chunks(job, settings.batch_predict.workers):
        totals["scored"] += scored
        totals["queued_for_review"] += queued
        log.info("batch_predict: %d listings scored by version %s (%.0f/s)", totals["scored"],
                 champion.version, totals["scored"] / (time.perf_counter() - started))  # fmt: skip
    report(totals, time.perf_counter() - started)
    return totals


@dataclass(frozen=True)
class ScoringJob:
    """What every chunk of one run needs: where to read and write, and the model."""

    settings: Settings
    dataset: str
    version: str
    model: Any
    logical_date: datetime

    def score(self, chunk: pd.DataFrame) -> tuple[int, int]:
        """Score one chunk and write it; (rows scored, rows sent to review)."""
        frame = predict_top(self.model, chunk)
        queued = write_chunk(self.settings, self.dataset, self.version, frame, self.logical_date)
        return len(frame), queued


def run_chunks(job: ScoringJob, workers: int) -> Iterator[tuple[int, int]]:
    """Each chunk's (scored, queued), read here in keyset order and scored by `workers`
    forked processes that share the loaded model; at most two chunks per worker in flight,
    so memory stays flat whatever the backlog."""
    chunks = iter_unscored(job)
    if workers == 1:
        yield from map(job.score, chunks)
        return
    global _JOB
    _JOB = job  # inherited by the forked workers: the model is not pickled
    # An executor, not a Pool: a worker that dies (killed, out of memory) fails the run at
    # once (BrokenProcessPool), and Airflow retries it, instead of hanging until the timeout.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker) as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(score_in_worker, chunk))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
    _JOB = None


_JOB: ScoringJob | None = None


def start_worker() -> None:
    """A forked worker: its own database connections, and the default SIGTERM (the parent's
    handler, e.g. Airflow's task runner's, would keep it alive when it is to stop)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    forget_engines_after_fork()


def score_in_worker(chunk: pd.DataFrame) -> tuple[int, int]:
    """One chunk, in a forked worker, with the job its parent set before forking."""
    return _JOB.score(chunk)


def iter_unscored(job: ScoringJob) -> Iterator[pd.DataFrame]:
    """Chunks of listings the version has not scored, in product id order."""
    after = ""
    while not (chunk := read_unscored(job.settings, job.dataset, job.version, after)).empty:
        yield chunk
        after = str(chunk["product_id"].iloc[-1])


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
    set_gauge("batch_predict.rows_per_second", rate)  # the last run's; 0 when it scored none

"""Batch scoring when a scoring worker is SIGKILLed mid-run: the run fails at once (no hang
until the task's timeout), the chunks already written stay, and the rerun scores exactly the
rest: every listing once, none twice."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from prodcat.data.dataset import load_dataset_spec
from prodcat.data.ingest import ingest_next_batch
from prodcat.db import get_engine
from prodcat.operations import batch_predict

from ..models import register_small_models, write_unlabelled_dataset

pytestmark = pytest.mark.integration
ROWS, EVERY, CHUNK = 2400, 2, 100  # 1,200 listings awaiting a category, 12 chunks
WHEN = datetime(2026, 12, 1, 2, tzinfo=UTC)


@pytest.fixture
def ours(settings, tmp_path):
    description = write_unlabelled_dataset(settings.data.raw_dir, tmp_path, ROWS, EVERY)
    ours = settings.model_copy(update={
        "data": settings.data.model_copy(update={
            "dataset": str(description), "raw_dir": tmp_path, "batch_size": ROWS,
            "eval_size": 100}),
        "mlflow": settings.mlflow.model_copy(update={"model_name": f"prodcat-{tmp_path.name}"}),
        "batch_predict": settings.batch_predict.model_copy(update={"chunk_rows": CHUNK}),
    })  # fmt: skip
    ingest_next_batch("faults-1", settings=ours)
    register_small_models(ours, ours.mlflow.model_name, 1)
    return ours


def scored(settings) -> tuple[int, int]:
    """(rows of the dataset's listings in batch_predictions, distinct listings among them)."""
    with get_engine(settings).connect() as conn:
        return tuple(conn.execute(text(
            "select count(*), count(distinct product_id) from batch_predictions "
            "where dataset = :d"), {"d": load_dataset_spec(settings).name}).one())  # fmt: skip


def test_a_killed_worker_fails_the_run_and_the_rerun_scores_only_the_rest(ours, monkeypatch):
    original, calls = batch_predict.ScoringJob.score, {"n": 0}

    def die_on_its_second_chunk(job, chunk):
        # Runs in a forked worker (which inherits this patch): each counts its own chunks.
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(job, chunk)

    monkeypatch.setattr(batch_predict.ScoringJob, "score", die_on_its_second_chunk)
    with pytest.raises(BrokenProcessPool):
        batch_predict.score_listings(WHEN, ours)
    partial, distinct = scored(ours)
    assert 0 < partial < ROWS // EVERY and partial == distinct
    assert partial % CHUNK == 0  # whole chunks only: each is one transaction

    monkeypatch.setattr(batch_predict.ScoringJob, "score", original)
    rerun = batch_predict.score_listings(WHEN, ours)
    assert rerun["scored"] == ROWS // EVERY - partial
    assert scored(ours) == (ROWS // EVERY, ROWS // EVERY)

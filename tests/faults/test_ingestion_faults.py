"""Ingestion when PostgreSQL dies in the middle of a batch: the real server is SIGKILLed while
the batch's transaction is open; nothing of the batch remains, and the rerun loads it whole."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from sqlalchemy import text

from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.db import get_engine

from ..e2e.platform import wait_for
from .breaking import drop_pooled_connections, pid_of, wait_all_healthy

pytestmark = pytest.mark.integration
IN_FLIGHT = text(
    "select count(*) from pg_locks l join pg_class c on c.oid = l.relation"
    " where c.relname = 'ingestion_batches' and l.mode = 'RowExclusiveLock' and l.granted"
    " and l.pid <> pg_backend_pid()"
)


def state(settings) -> dict[str, int]:
    with get_engine(settings).connect() as conn:
        return {
            "products": conn.execute(text("select count(*) from products")).scalar_one(),
            "batches": conn.execute(
                text("select count(*) from ingestion_batches where status = 'succeeded'")
            ).scalar_one(),
            "rejected": conn.execute(text("select count(*) from rejected_rows")).scalar_one(),
            "cursor": conn.execute(text("select next_row from ingestion_cursor")).scalar_one(),
        }


def batch_in_flight(settings) -> bool:
    with get_engine(settings).connect() as conn:
        return conn.execute(IN_FLIGHT).scalar_one() > 0


@pytest.mark.timeout(1200)
def test_postgres_killed_mid_batch_leaves_nothing_and_the_rerun_loads_it_whole(stack, settings):
    wait_all_healthy(stack)
    settings = settings.model_copy(
        update={"data": settings.data.model_copy(update={"batch_size": 6000})}
    )
    reset_data(confirm=True, settings=settings)
    ingest_next_batch("mid-batch-first", settings=settings)
    before = state(settings)
    outcome: dict = {}

    def ingest() -> None:
        try:
            outcome["result"] = ingest_next_batch("mid-batch-killed", settings=settings)
        except Exception as error:  # the server died under it
            outcome["error"] = error

    worker = threading.Thread(target=ingest)
    worker.start()
    wait_for(lambda: batch_in_flight(settings), 300, "the batch's open transaction", every=0.02)
    os.kill(pid_of(stack, "postgres"), signal.SIGKILL)
    worker.join(300)
    assert "error" in outcome, f"the batch committed before the kill: {outcome}"
    drop_pooled_connections()
    wait_all_healthy(stack)

    assert state(settings) == before  # not one row, reject, loaded batch or cursor move
    result = ingest_next_batch("mid-batch-killed", settings=settings)
    assert not result.already_loaded and result.start_row == before["cursor"]
    after = state(settings)
    assert after["products"] == before["products"] + result.rows_accepted
    assert after["rejected"] == before["rejected"] + result.rows_rejected
    assert after["batches"] == before["batches"] + 1 and after["cursor"] == result.end_row
    assert ingest_next_batch("mid-batch-killed", settings=settings).already_loaded

"""Ingestion when a service dies under a batch: PostgreSQL SIGKILLed while the batch's
transaction is open, S3 stopped while it uploads images. Nothing of the batch remains, and
the rerun of the same run key loads it whole, once."""

from __future__ import annotations

import os
import signal
import threading

import pytest
from minio.error import MinioException
from sqlalchemy import text
from urllib3.exceptions import HTTPError

from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.db import get_engine
from prodcat.storage import get_s3_client

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


@pytest.mark.timeout(900)
def test_s3_stopped_while_a_batch_uploads_its_images_then_the_rerun_loses_nothing(stack, settings):
    wait_all_healthy(stack)
    sample = settings.model_copy(update={"data": settings.data.model_copy(
        update={"dataset": "rakuten-sample", "batch_size": 1000, "eval_size": 50})})  # fmt: skip
    reset_data(confirm=True, settings=sample)
    empty = state(sample)
    stack.down(["s3"])
    try:
        with pytest.raises((HTTPError, MinioException)):  # cannot connect, or S3 refused
            ingest_next_batch("s3-stopped", settings=sample)
        assert state(sample) == empty
    finally:
        stack.up(["s3"])

    done = ingest_next_batch("s3-stopped", settings=sample)
    assert done.rows_with_image > 2 and state(sample)["products"] == done.rows_accepted
    with get_engine(sample).connect() as conn:
        keys = conn.execute(
            text("select image_key from products where image_key is not null")
        ).scalars().all()  # fmt: skip
    assert len(keys) == done.rows_with_image
    client = get_s3_client(sample)
    assert all(client.stat_object(sample.s3.images_bucket, key).size > 1000 for key in keys)

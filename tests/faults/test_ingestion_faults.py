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

from prodcat.data.ingest import RESET_LOCK, ingest_next_batch
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


def sample_settings(settings):
    """The bundled sample dataset, whose listings have images, in batches of 1,000."""
    return settings.model_copy(update={"data": settings.data.model_copy(
        update={"dataset": "rakuten-sample", "batch_size": 1000, "eval_size": 50})})  # fmt: skip


def image_keys(settings) -> list[str]:
    with get_engine(settings).connect() as conn:
        return conn.execute(
            text("select image_key from products where image_key is not null")
        ).scalars().all()  # fmt: skip


def stored_objects(settings) -> set[str]:
    client = get_s3_client(settings)
    return {o.object_name for o in client.list_objects(settings.s3.images_bucket, recursive=True)}


def waiting_on_the_reset_lock(settings) -> bool:
    with get_engine(settings).connect() as conn:
        return conn.execute(text(
            "select count(*) from pg_locks where locktype = 'advisory' and objid = :id"
            " and not granted"), {"id": RESET_LOCK}).scalar_one() > 0  # fmt: skip


@pytest.mark.timeout(900)
def test_a_batch_waits_until_a_running_reset_has_emptied_the_images_bucket(stack, settings):
    """reset_data commits its truncate, then empties the bucket: a batch loaded between the
    two would keep rows whose images the reset deletes. The reset's lock makes it wait."""
    wait_all_healthy(stack)
    sample = sample_settings(settings)
    reset_data(confirm=True, settings=sample)
    conn = get_engine(sample).raw_connection()
    outcome: dict = {}
    try:
        with conn.cursor() as cur:  # what reset_data holds from its truncate to the bucket
            cur.execute("select pg_advisory_lock(%s)", (RESET_LOCK,))
        worker = threading.Thread(target=lambda: outcome.update(
            result=ingest_next_batch("reset-lock", settings=sample)))  # fmt: skip
        worker.start()
        waiting = wait_for(
            lambda: waiting_on_the_reset_lock(sample) or not worker.is_alive(), 300,
            "the batch to wait or end", every=0.1,
        )  # fmt: skip
        assert waiting and worker.is_alive() and not outcome, "the batch did not wait"
        assert state(sample)["batches"] == 0
    finally:
        conn.invalidate()  # ends the session, and the lock
    worker.join(300)
    assert outcome["result"].rows_with_image > 2
    assert set(image_keys(sample)) <= stored_objects(sample)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("first", ["reset", "batch"])
def test_reset_data_while_prepare_data_runs_loses_no_image_and_no_row(stack, settings, first):
    """The two at once, in either order: whichever runs second sees the other's end state.
    Every product left has its image in the bucket, and the cursor matches the batches."""
    wait_all_healthy(stack)
    sample = sample_settings(settings)
    reset_data(confirm=True, settings=sample)
    ingest_next_batch(f"reset-race-{first}-0", settings=sample)  # images for the reset to delete
    errors: list = []

    def run(action) -> threading.Thread:
        def guarded() -> None:
            try:
                action()
            except Exception as error:  # reported below
                errors.append(error)

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    actions = {
        "reset": lambda: reset_data(confirm=True, settings=sample),
        "batch": lambda: ingest_next_batch(f"reset-race-{first}-1", settings=sample),
    }
    order = ["reset", "batch"] if first == "reset" else ["batch", "reset"]
    threads = [run(actions[name]) for name in order]
    for thread in threads:
        thread.join(300)
    assert not errors
    keys, after = image_keys(sample), state(sample)
    assert set(keys) <= stored_objects(sample)
    with get_engine(sample).connect() as conn:
        loaded = conn.execute(text(
            "select coalesce(max(end_row), 0), count(*) from ingestion_batches"
            " where status = 'succeeded'")).one()  # fmt: skip
        held_out = conn.execute(text("select count(*) from evaluation_set")).scalar_one()
    assert after["cursor"] == loaded[0] and after["batches"] == loaded[1] <= 1
    assert held_out == 50

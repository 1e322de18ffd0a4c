"""The prediction log's bounded buffer, without a database: the writer thread is never started,
so nothing drains the buffer and every overflow is exactly accounted for."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from prodcat.config import Settings
from prodcat.serving.prediction_log import PredictionLogWriter, PredictionRecord

DROPPED = "prodcat_api_prediction_logs_dropped_total"


def dropped() -> float:
    return REGISTRY.get_sample_value(DROPPED) or 0.0


def records(count: int) -> list[PredictionRecord]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    return [PredictionRecord(now, "7", "10", 0.5, f"title {i}", "") for i in range(count)]


def writer(capacity: int, batch_size: int = 1000) -> PredictionLogWriter:
    return PredictionLogWriter(
        Settings(api={"log_queue_size": capacity, "log_batch_size": batch_size})
    )


def test_overflow_counts_every_dropped_record_batches_included():
    log, before = writer(capacity=5), dropped()
    log.submit(records(3))
    assert (log.pending(), dropped() - before) == (3, 0)
    log.submit(records(4))  # a batch of 4 with room for 2: 2 kept, 2 dropped
    assert (log.pending(), dropped() - before) == (5, 2)
    log.submit(records(1))
    log.submit(records(6))  # a batch bigger than the whole buffer, while it is full
    log.submit([])
    assert (log.pending(), dropped() - before) == (5, 2 + 1 + 6)


def test_a_batch_larger_than_the_buffer_keeps_the_first_records():
    log, before = writer(capacity=4), dropped()
    batch = records(10)
    log.submit(batch)
    assert dropped() - before == 6
    assert list(log._buffer) == batch[:4]


def test_a_full_batch_wakes_the_writer_and_a_partial_one_does_not():
    log = writer(capacity=10, batch_size=3)
    log.submit(records(2))
    assert not log._wake.is_set()
    log.submit(records(1))
    assert log._wake.is_set()


def test_the_logged_hash_is_sha256_of_title_unit_separator_description():
    record = PredictionRecord(datetime(2026, 11, 1, tzinfo=UTC), "7", "40", 0.25,
                              "Console \t\\N", "neuve")  # fmt: skip
    line = record.copy_line(raw_text=False).rstrip("\n").split("\t")
    expected = hashlib.sha256(b"Console \t\\N\x1fneuve").hexdigest()
    assert line[6] == expected
    assert line[:6] == ["2026-11-01T00:00:00+00:00", "7", "40", "0.25", "11", "5"]
    assert line[7:] == ["\\N", "\\N"]  # no raw text

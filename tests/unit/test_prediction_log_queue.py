"""The prediction log's bounded buffer, without a database: the writer thread is never started,
so nothing drains the buffer and every overflow is exactly accounted for."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from prodcat.config import Settings
from prodcat.serving.prediction_log import PredictionLogWriter, PredictionRecord
from prodcat.serving.schemas import PredictRequest

DROPPED = "prodcat_api_prediction_logs_dropped_total"


def dropped() -> float:
    return REGISTRY.get_sample_value(DROPPED) or 0.0


def records(count: int) -> list[PredictionRecord]:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    return [PredictionRecord.of(now, "7", "10", 0.5, f"title {i}", "", keep_text=True)
            for i in range(count)]  # fmt: skip


def writer(capacity: int, batch_size: int = 1000, raw_text: bool = True) -> PredictionLogWriter:
    return PredictionLogWriter(Settings(api={
        "log_queue_size": capacity, "log_batch_size": batch_size, "log_raw_text": raw_text,
    }))  # fmt: skip


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
    record = PredictionRecord.of(datetime(2026, 11, 1, tzinfo=UTC), "7", "40", 0.25,
                                 "Console \t\\N", "neuve", keep_text=False)  # fmt: skip
    line = record.copy_line().rstrip("\n").split("\t")
    expected = hashlib.sha256(b"Console \t\\N\x1fneuve").hexdigest()
    assert line[6] == expected
    assert line[:6] == ["2026-11-01T00:00:00+00:00", "7", "40", "0.25", "11", "5"]
    assert line[7:9] == ["\\N", "\\N"]  # no raw text
    assert line[9:] == ["f", "\\N"]  # served, not a shadow answer


def test_without_raw_text_the_buffered_records_never_hold_the_text():
    items = [PredictRequest(title="Robe rouge taille 38", description="coton"),
             PredictRequest(title="Mme Durand, 12 rue des Lilas")]  # fmt: skip
    # Doubtful answers (under the review threshold, 0.5): only with raw text do they keep it
    # for the review queue.
    results = [{"category_code": "1280", "confidence": 0.2}] * 2
    private, public = writer(capacity=10, raw_text=False), writer(capacity=10)
    private.log("7", items, results)
    public.log("7", items, results)
    kept = list(private._buffer)
    assert [(r.title, r.description) for r in kept] == [(None, None), (None, None)]
    assert [(r.title_chars, r.description_chars) for r in kept] == [(20, 5), (28, 0)]
    # The same hash either way: private rows still join with public ones.
    assert [r.input_hash for r in kept] == [r.input_hash for r in public._buffer]
    assert [(r.title, r.description) for r in public._buffer] == [
        ("Robe rouge taille 38", "coton"),
        ("Mme Durand, 12 rue des Lilas", ""),
    ]
    assert all("Durand" not in repr(vars(r)) for r in kept)
    assert [r.review_text for r in public._buffer][1] == ("Mme Durand, 12 rue des Lilas", "")

"""The prediction log: every prediction goes to PostgreSQL in batches, off the request path.

Requests only put a record on a bounded queue (never blocking). One writer thread drains
it in batches. When the database is down the writer keeps its batch and retries with
backoff; the queue buffers what comes meanwhile, and what does not fit is dropped and
counted. When the database returns, the buffered records are written: that is the catch-up.
Rows go in with COPY: at hundreds of predictions a second, a parameterised INSERT cost the
writer thread (and so the request threads sharing its interpreter) several times more.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import psycopg2
from sqlalchemy import exc

from prodcat.config import Settings
from prodcat.db.copy import copy_field
from prodcat.operations.review import copy_api_answers
from prodcat.serving import metrics

log = logging.getLogger(__name__)
COLUMNS = ("predicted_at", "model_version", "category_code", "confidence", "title_chars",
           "description_chars", "input_hash", "title", "description", "shadow",
           "agrees")  # fmt: skip
COPY_SQL = f"COPY prediction_log ({', '.join(COLUMNS)}) FROM STDIN"
# The database is away (or the connection broke): keep the batch and retry. Anything else
# is about the rows themselves, and retrying them would block the log for good.
TRANSIENT = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError,
             psycopg2.OperationalError, psycopg2.InterfaceError)  # fmt: skip


@dataclass(frozen=True)
class PredictionRecord:
    """One prediction as prediction_log stores it. The text itself is None unless raw text is
    logged: a private record never holds it, only its lengths and hash."""

    predicted_at: datetime
    model_version: str
    category_code: str
    confidence: float
    title_chars: int
    description_chars: int
    input_hash: str
    title: str | None
    description: str | None
    # A doubtful answer for the review queue (only when raw text is logged, so the text is here).
    for_review: bool = False
    shadow: bool = False  # a challenger's answer, scored in shadow
    agrees: bool | None = None  # shadow: the same category as the champion's answer

    @classmethod
    def of(
        cls, predicted_at: datetime, model_version: str, category_code: str,
        confidence: float, title: str, description: str, keep_text: bool,
        review_below: float = 0.0,
    ) -> PredictionRecord:  # fmt: skip
        """The record of one prediction, with its text only when keep_text, or for review when
        its confidence is under review_below."""
        return cls(predicted_at, model_version, category_code, confidence, len(title),
                   len(description), hash_input(title, description),
                   title if keep_text else None, description if keep_text else None,
                   keep_text and confidence < review_below)  # fmt: skip

    @property
    def review_text(self) -> tuple[str, str] | None:
        """Title and description of an answer for the review queue, else None."""
        return (self.title or "", self.description or "") if self.for_review else None

    def as_shadow(self, agrees: bool) -> PredictionRecord:
        """This record as a challenger's shadow answer (never served)."""
        return replace(self, shadow=True, agrees=agrees)

    def copy_line(self) -> str:
        """The prediction_log row as a line of COPY text."""
        fields = (
            self.predicted_at.isoformat(), copy_field(self.model_version),
            copy_field(self.category_code), repr(self.confidence), str(self.title_chars),
            str(self.description_chars), self.input_hash,
            "\\N" if self.title is None else copy_field(self.title),
            "\\N" if self.description is None else copy_field(self.description),
            "t" if self.shadow else "f",
            "\\N" if self.agrees is None else ("t" if self.agrees else "f"),
        )  # fmt: skip
        return "\t".join(fields) + "\n"

    def review_line(self) -> str:
        """The review_queue row of a doubtful answer, as COPY text (API_REVIEW_COLUMNS)."""
        title, description = self.review_text or ("", "")
        fields = ("api", copy_field(title), copy_field(description),
                  copy_field(self.category_code), repr(self.confidence),
                  copy_field(self.model_version), self.predicted_at.isoformat())  # fmt: skip
        return "\t".join(fields) + "\n"


def hash_input(title: str, description: str) -> str:
    """SHA-256 of the input, to count repeats and join with other logs without the text."""
    data = f"{title}\x1f{description}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


class PredictionLogWriter:
    """A bounded buffer of prediction records and the thread that writes them in batches.

    The buffer is a deque rather than a queue.Queue: a Queue wakes the writer on every record,
    and those wake-ups took the interpreter from the model thread hundreds of times a second.
    The writer wakes when a batch is full or flush_seconds have passed.
    """

    def __init__(self, settings: Settings):
        cfg = settings.api
        self.raw_text = cfg.log_raw_text
        # A reviewer needs the text: API answers go to review only when raw text is logged.
        self.review_below = settings.review.confidence_threshold if cfg.log_raw_text else 0.0
        self.batch_size = cfg.log_batch_size
        self.flush_seconds = cfg.log_flush_seconds
        self.capacity = cfg.log_queue_size
        self._buffer: deque[PredictionRecord] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> int:
        """Records buffered, not yet written."""
        return len(self._buffer)

    def log(self, model_version: str, items: list, results: list[dict]) -> None:
        """Buffer the records of one model call (items have .title and .description); the
        text is dropped here, before anything holds it, unless raw text is logged."""
        now = datetime.now(UTC)
        self.submit([
            PredictionRecord.of(now, model_version, r["category_code"], r["confidence"],
                                item.title, item.description or "", self.raw_text,
                                self.review_below)
            for item, r in zip(items, results, strict=True)
        ])  # fmt: skip

    def submit(self, records: list[PredictionRecord]) -> None:
        """Buffer records for writing; never blocks. What does not fit is dropped and counted."""
        with self._lock:
            room = max(self.capacity - len(self._buffer), 0)
            self._buffer.extend(records[:room])
            full = len(self._buffer) >= self.batch_size
        if len(records) > room:
            metrics.PREDICTION_LOGS_DROPPED.inc(len(records) - room)
        if full:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (for at most timeout seconds), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        engine, backoff, failing = _log_engine(self._settings), 0.5, False
        while True:
            batch = self._take_batch()
            if not batch and self._stop.is_set():
                return
            while batch:
                try:
                    write_records(engine, batch)
                except TRANSIENT as error:  # the database is down: keep the batch, retry
                    metrics.PREDICTION_LOG_WRITE_FAILURES.inc()
                    metrics.PREDICTION_LOG_QUEUE.set(self.pending())
                    if not failing:
                        log.warning("prediction log: cannot write (%s); buffering", error)
                    failing = True
                    if self._stop.wait(backoff):
                        return  # shutting down with the database away: the batch is lost
                    backoff = min(backoff * 2, 5.0)
                    continue
                except Exception:
                    metrics.PREDICTION_LOG_WRITE_FAILURES.inc()
                    metrics.PREDICTION_LOGS_DROPPED.inc(len(batch))
                    log.exception("prediction log: dropped a batch of %d records", len(batch))
                else:
                    metrics.PREDICTION_LOGS_WRITTEN.inc(len(batch))
                    if failing:
                        log.info("prediction log: database is back, catching up")
                batch, backoff, failing = [], 0.5, False
            metrics.PREDICTION_LOG_QUEUE.set(self.pending())

    def _take_batch(self) -> list[PredictionRecord]:
        """Up to batch_size records, once a batch is full or flush_seconds have passed."""
        if len(self._buffer) < self.batch_size and not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
        self._wake.clear()
        with self._lock:
            count = min(len(self._buffer), self.batch_size)
            batch = [self._buffer.popleft() for _ in range(count)]
        if len(self._buffer) >= self.batch_size:
            self._wake.set()  # more than a batch waits: no pause before the next one
        return batch


def write_records(engine, records: list[PredictionRecord]) -> None:
    """Append records to prediction_log in one COPY, and the doubtful ones to the review
    queue, in one transaction."""
    buffer = io.StringIO("".join(r.copy_line() for r in records))
    with engine.begin() as conn, conn.connection.cursor() as cursor:
        cursor.copy_expert(COPY_SQL, buffer)
        copy_api_answers(cursor, [r.review_line() for r in records if r.review_text])


def _log_engine(settings: Settings):
    from sqlalchemy import create_engine

    # Its own small pool with a short connect timeout: a down database must fail fast here.
    return create_engine(
        settings.postgres.url("app"),
        pool_pre_ping=True,
        pool_size=1,
        max_overflow=0,
        connect_args={"connect_timeout": 3},
    )

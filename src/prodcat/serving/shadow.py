"""The shadow challenger: a `challenger` version scores a sampled share of live inputs off the
request path, and its answers go to the prediction log beside the champion's.

The champion's model call offers its inputs and answers (the prediction sink); a sampled
share goes on a bounded buffer, and one thread scores them in batches with the challenger's
own pipeline (its own cleaning). Nothing here can delay or change a response: the offer
never blocks, a full buffer drops and counts, and a challenger that fails is counted and
logged while the champion keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from prodcat.config import Settings
from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel, freeze_heap
from prodcat.serving.prediction_log import PredictionRecord

log = logging.getLogger(__name__)
BATCH_ITEMS = 64
FLUSH_SECONDS = 0.5


@dataclass(frozen=True)
class Sampled:
    """One live input and the champion's answer to it."""

    title: str
    description: str
    category_code: str
    predicted_at: datetime


def find_challenger(settings: Settings) -> str | None:
    """The version the `challenger` alias points at (None when there is none)."""
    from prodcat.training.registry import CHALLENGER, get_alias_version

    version = get_alias_version(CHALLENGER, settings)
    return version.version if version else None


def load_challenger(settings: Settings, version: str) -> LoadedModel:
    """A registered version, its files checked against their digest, ready to score."""
    from prodcat.training.registry import load_version

    return LoadedModel(load_version(version, settings), version, "registry")


class ShadowScorer:
    """The sampled buffer, the thread that scores it, and the challenger it scores with."""

    def __init__(
        self,
        settings: Settings,
        record: Callable[[list[PredictionRecord]], None] | None,
        probe: Callable[[Settings], str | None] = find_challenger,
        loader: Callable[[Settings, str], LoadedModel] = load_challenger,
    ):
        self.settings, self.record, self.probe, self.loader = settings, record, probe, loader
        self.sample, self.capacity = settings.api.shadow_sample, settings.api.shadow_queue_size
        self.keep_text = settings.api.log_raw_text
        self.challenger: LoadedModel | None = None
        self._buffer: deque[Sampled] = deque()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._random = random.Random()
        self._thread: threading.Thread | None = None

    def offer(self, model_version: str, items: list, results: list[dict]) -> None:
        """Sample the inputs of one champion call for the challenger; never blocks."""
        if self.challenger is None or self.sample <= 0:
            return
        now, chosen = datetime.now(UTC), []
        for item, result in zip(items, results, strict=True):
            if self._random.random() < self.sample:
                chosen.append(Sampled(item.title, item.description or "",
                                      result["category_code"], now))  # fmt: skip
        room = max(self.capacity - len(self._buffer), 0)
        self._buffer.extend(chosen[:room])  # deque appends are atomic: no lock on this path
        if len(chosen) > room:
            metrics.SHADOW_DROPPED.inc(len(chosen) - room)
        if len(self._buffer) >= BATCH_ITEMS:
            self._wake.set()

    async def refresh(self, champion_version: str | None) -> None:
        """Follow the `challenger` alias: load a new version, drop one that is gone or has
        become the champion. A failure leaves shadowing off, never the API."""
        try:
            wanted = await asyncio.to_thread(self.probe, self.settings)
            if wanted is None or wanted == champion_version:
                self.challenger = None
            elif self.challenger is None or self.challenger.version != wanted:
                self.challenger = await asyncio.to_thread(self.loader, self.settings, wanted)
                # Its vocabularies out of the collector's walks, as the champion's are.
                await asyncio.to_thread(freeze_heap)
                log.info("shadowing challenger version %s on %.0f%% of live inputs", wanted,
                         100 * self.sample)  # fmt: skip
        except Exception as error:
            metrics.SHADOW_FAILURES.inc()
            log.warning("cannot load the challenger, shadowing is off: %s", error)
            self.challenger = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if len(self._buffer) < BATCH_ITEMS:
                self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), BATCH_ITEMS))]
            challenger = self.challenger
            if batch and challenger is not None:
                self.score(challenger, batch)

    def score(self, challenger: LoadedModel, batch: list[Sampled]) -> None:
        """Score one batch with the challenger; count agreement and log both answers."""
        frame = pd.DataFrame({"title": [s.title for s in batch],
                              "description": [s.description for s in batch]})  # fmt: skip
        started = time.perf_counter()
        try:
            proba = challenger.model.predict_proba(frame)
        except Exception:
            metrics.SHADOW_FAILURES.inc()
            log.exception("the challenger (version %s) failed on %d inputs", challenger.version,
                          len(batch))  # fmt: skip
            return
        per_item = (time.perf_counter() - started) / len(batch)
        best = np.argmax(proba, axis=1)
        records = []
        for sampled, column, row in zip(batch, best, proba, strict=True):
            code = challenger.classes[column]
            agrees = code == sampled.category_code
            metrics.SHADOW_LATENCY.observe(per_item)
            metrics.SHADOW_PREDICTIONS.labels(challenger.version, str(agrees).lower()).inc()
            metrics.SHADOW_SCORED.inc()
            metrics.SHADOW_AGREED.inc(agrees)
            record = PredictionRecord.of(sampled.predicted_at, challenger.version, code,
                                         round(float(row[column]), 6), sampled.title,
                                         sampled.description, self.keep_text)  # fmt: skip
            records.append(record.as_shadow(agrees))
        if self.record is not None:
            self.record(records)

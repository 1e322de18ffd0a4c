"""Running the model: top-k results for a list of items, and the batcher for single requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.prediction_log import PredictionRecord
from prodcat.serving.schemas import CategoryScore, PredictRequest, PredictResponse

log = logging.getLogger(__name__)
Sink = Callable[[list[PredictionRecord]], None]


def predict_items(
    loaded: LoadedModel, items: list[PredictRequest], ks: list[int], sink: Sink | None = None
) -> list[PredictResponse]:
    """Top-k categories of each item (k per item), in the items' order; one model call."""
    frame = pd.DataFrame(
        {"title": [i.title for i in items], "description": [i.description or "" for i in items]}
    )
    probabilities = loaded.model.predict_proba(frame)
    metrics.BATCH_SIZE.observe(len(items))
    classes, names = loaded.classes, loaded.category_names
    best = np.argsort(-probabilities, axis=1)[:, : max(ks)]
    now, results, records = datetime.now(UTC), [], []
    for item, row, order, k in zip(items, probabilities, best, ks, strict=True):
        # model_construct: these values come from the model, not from a client; validating
        # them again cost a tenth of a 1,000-item batch.
        top = [
            CategoryScore.model_construct(category_code=classes[j],
                                          category_name=names.get(classes[j]),
                                          confidence=round(float(row[j]), 6))
            for j in order[:k]
        ]  # fmt: skip
        results.append(
            PredictResponse.model_construct(
                category_code=top[0].category_code, category_name=top[0].category_name,
                confidence=top[0].confidence, top_k=top, model_version=loaded.version,
            )
        )  # fmt: skip
        metrics.PREDICTIONS.labels(top[0].category_code).inc()
        metrics.CONFIDENCE.observe(top[0].confidence)
        if sink is not None:
            records.append(
                PredictionRecord(now, loaded.version, top[0].category_code, top[0].confidence,
                                 item.title, item.description or "")
            )  # fmt: skip
    if sink is not None:
        sink(records)
    return results


class PredictionBatcher:
    """Coalesces concurrent single predictions into one model call per loaded model.

    Nothing waits for a batch to fill: whatever queued while the previous call ran goes
    into the next one. A lone request goes straight through; a busy server spreads the
    model's fixed cost per call (a few ms of sklearn overhead) over many requests. Each
    request keeps the model it arrived with, so requests in flight during a swap finish on
    the old model.
    """

    def __init__(self, sink: Sink | None = None, max_items: int = 64):
        self.sink, self.max_items = sink, max_items
        self._queue: asyncio.Queue = asyncio.Queue()

    async def predict(self, loaded: LoadedModel, item: PredictRequest, k: int) -> PredictResponse:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((loaded, item, k, future))
        return await future

    async def run_forever(self) -> None:
        while True:
            pending = [await self._queue.get()]
            while len(pending) < self.max_items and not self._queue.empty():
                pending.append(self._queue.get_nowait())
            for loaded in {id(p[0]): p[0] for p in pending}.values():
                group = [p for p in pending if p[0] is loaded]
                await self._run_group(loaded, group)

    async def _run_group(self, loaded: LoadedModel, group: list[tuple]) -> None:
        items, ks, futures = [g[1] for g in group], [g[2] for g in group], [g[3] for g in group]
        try:
            results = await asyncio.to_thread(predict_items, loaded, items, ks, self.sink)
        except Exception as error:
            log.exception("model call failed for %d items", len(items))
            results = [error] * len(items)
        for future, result in zip(futures, results, strict=True):
            if future.done():  # the client went away
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

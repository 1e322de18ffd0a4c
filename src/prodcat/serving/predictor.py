"""Running the model: top-k results for a list of items, and the batcher for single requests."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.prediction_log import PredictionRecord
from prodcat.serving.schemas import PredictRequest

log = logging.getLogger(__name__)
Sink = Callable[[list[PredictionRecord]], None]


def predict_items(
    loaded: LoadedModel, items: list[PredictRequest], ks: list[int], sink: Sink | None = None
) -> list[dict]:
    """Top-k categories of each item (k per item), in the items' order; one model call.

    Results are plain dicts shaped as PredictResponse: building a pydantic object per
    category cost a quarter of a 1,000-item batch, and they would only be dumped to JSON.
    """
    # (title, description) rows: the model's cleaner takes them as it takes a DataFrame,
    # without pandas' cost of a frame per call.
    rows = [(i.title, i.description or "") for i in items]
    probabilities = loaded.model.predict_proba(rows)
    order = np.argsort(-probabilities, axis=1)[:, : max(ks)]
    scores = np.take_along_axis(probabilities, order, axis=1).round(6).tolist()
    categories, results = loaded.categories, []
    for k, columns, confidences in zip(ks, order.tolist(), scores, strict=True):
        pairs = zip(columns[:k], confidences[:k], strict=True)
        top = [{**categories[j], "confidence": p} for j, p in pairs]
        results.append({**top[0], "top_k": top, "model_version": loaded.version})
    record_prediction_metrics(results)
    if sink is not None:
        now = datetime.now(UTC)
        sink([
            PredictionRecord(now, loaded.version, r["category_code"], r["confidence"],
                             item.title, item.description or "")
            for item, r in zip(items, results, strict=True)
        ])  # fmt: skip
    return results


def record_prediction_metrics(results: list[dict]) -> None:
    metrics.BATCH_SIZE.observe(len(results))
    for code, count in Counter(r["category_code"] for r in results).items():
        metrics.PREDICTIONS.labels(code).inc(count)
    for result in results:
        metrics.CONFIDENCE.observe(result["confidence"])


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

    async def predict(self, loaded: LoadedModel, item: PredictRequest, k: int) -> dict:
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((loaded, item, k, future))
        return await future

    async def run_forever(self) -> None:
        while True:
            await self._run_pending([await self._queue.get()])

    async def _run_pending(self, pending: list[tuple]) -> None:
        # A method of its own so that nothing refers to the requests' models once they are
        # answered: a model swapped out must not be kept alive by an idle batcher.
        while len(pending) < self.max_items and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for loaded in {id(p[0]): p[0] for p in pending}.values():
            await self._run_group(loaded, [p for p in pending if p[0] is loaded])

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

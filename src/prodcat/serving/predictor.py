"""Running the model: top-k results for a list of items, and the batcher every call goes through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prodcat.config import Settings
from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.schemas import PredictRequest

log = logging.getLogger(__name__)
EXPLAINED_NGRAMS = 10  # n-grams listed per explanation, and per runner-up
# Under load, the lane of single predictions waits this long before each call: the answers
# it has just sent bring their connections' next requests within about a millisecond, and
# they join this call instead of the next. 16 connections on 2 workers: 7 items per call
# instead of 4 (benchmarks/api_load.py).
GATHER_SECONDS = 0.001
# A call of single predictions this long or longer goes to a thread like a batch: on the loop
# it would hold every other request, and the deadlines, for milliseconds (a call of 50,000
# characters took 30 ms, so this is about 2.5 ms).
INLINE_CALL_CHARS = 4000
# The prediction log's door (PredictionLogWriter.log): model version, items, their results.
Sink = Callable[[str, list[PredictRequest], list[dict]], None]


def predict_items(
    loaded: LoadedModel,
    docs: list[str],
    items: list[PredictRequest],
    ks: list[int],
    sink: Sink | None = None,
    explain: list[bool] | None = None,
) -> list[dict]:
    """Top-k categories of each item (k per item), in the items' order; one model call. Items
    marked in explain also get their explanation, from the same features.

    docs are the items as the model's cleaner made them (serving/budget.py cleaned and
    measured them); items are the raw requests, for the prediction log. Results are plain
    dicts shaped as PredictResponse: building a pydantic object per category cost a quarter
    of a 1,000-item batch, and they would only be dumped to JSON.
    """
    explanations = None
    if explain is not None and any(explain):
        probabilities, explanations = loaded.predict_and_explain(docs, explain, EXPLAINED_NGRAMS)
    else:
        probabilities = loaded.predict_documents(docs)
    order = np.argsort(-probabilities, axis=1)[:, : max(ks)]
    scores = np.take_along_axis(probabilities, order, axis=1).round(6).tolist()
    categories, results = loaded.categories, []
    for k, columns, confidences in zip(ks, order.tolist(), scores, strict=True):
        pairs = zip(columns[:k], confidences[:k], strict=True)
        top = [{**categories[j], "confidence": p} for j, p in pairs]
        results.append({**top[0], "top_k": top, "model_version": loaded.version})
    if explanations is not None:
        for result, explanation in zip(results, explanations, strict=True):
            if explanation is not None:
                result["explanation"] = explanation
    record_prediction_metrics(results)
    if sink is not None:
        sink(loaded.version, items, results)
    return results


def record_prediction_metrics(results: list[dict]) -> None:
    metrics.BATCH_SIZE.observe(len(results))
    for code, count in Counter(r["category_code"] for r in results).items():
        metrics.PREDICTIONS.labels(code).inc(count)
    for result in results:
        metrics.CONFIDENCE.observe(result["confidence"])


class Overloaded(Exception):
    """503 with Retry-After: the worker has more work waiting than it takes on."""

    retry_after = 1

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(eq=False)  # a job is itself: found in its queue by identity
class Job:
    """One request's items waiting for the model."""

    loaded: LoadedModel
    docs: list[str]
    items: list[PredictRequest]
    ks: list[int]
    deadline: float  # the event loop's time after which the request gets its 503
    explain: bool = False
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def chars(self) -> int:
        return sum(map(len, self.docs))


class Lane:
    """A bounded queue of jobs and the one task that runs them, one model call at a time.

    Jobs are coalesced: whatever queued while the previous call ran goes into the next one,
    up to max_items jobs and max_chars characters, so a busy server spreads the model's
    fixed cost per call over many requests and a lone request goes straight through.

    An inline lane calls the model on the event loop for calls under INLINE_CALL_CHARS, and
    right after a call that took several jobs, gathers for GATHER_SECONDS before the next;
    other lanes, and longer calls, run in a thread.
    """

    def __init__(
        self, size: int, max_items: int, max_chars: int, sink: Sink | None, inline: bool = False
    ):
        self.size, self.max_items, self.max_chars, self.sink = size, max_items, max_chars, sink
        self.inline = inline
        self.jobs: deque[Job] = deque()
        self.running: list[Job] = []  # in the model call now
        self._ready = asyncio.Event()

    @property
    def full(self) -> bool:
        return len(self.jobs) >= self.size

    def busy_detail(self) -> str:
        """Why a request is refused while the queue is full (counted as such)."""
        metrics.OVERLOAD_REJECTIONS.labels("queue_full").inc()
        return f"{len(self.jobs)} requests are waiting for the model already"

    def check_room(self) -> None:
        """Overloaded when the queue is full."""
        if self.full:
            raise Overloaded(self.busy_detail())

    def put(self, job: Job) -> None:
        self.check_room()
        self.jobs.append(job)
        self._ready.set()

    def forget(self, job: Job) -> None:
        """Take a job nobody waits for out of the queue, so it holds no place there."""
        with contextlib.suppress(ValueError):  # the model has it already
            self.jobs.remove(job)

    def expire(self, now: float, timeout: float) -> None:
        """Answer 503 to every job past its deadline, queued or in the model call."""
        late = [j for j in (*self.jobs, *self.running) if j.deadline <= now]
        for job in late:
            if not job.future.done():
                metrics.OVERLOAD_REJECTIONS.labels("timeout").inc()
                job.future.set_exception(
                    Overloaded(f"the model did not answer within {timeout:g} s"))  # fmt: skip
        if late:
            self.jobs = deque(j for j in self.jobs if not j.future.done())

    async def run_forever(self) -> None:
        previous = 0  # jobs in the previous call: more than one means concurrent clients
        while True:
            await self._ready.wait()
            if self.inline and previous > 1 and len(self.jobs) < self.max_items:
                await asyncio.sleep(GATHER_SECONDS)
            jobs = self._next_jobs()
            if not jobs:
                self._ready.clear()
                previous = 0  # idle: the next lone request goes straight through
                continue
            previous = len(jobs)
            await self._run_jobs(jobs)

    def _next_jobs(self) -> list[Job]:
        jobs, chars = [], 0
        while self.jobs and len(jobs) < self.max_items:
            job = self.jobs[0]
            if jobs and chars + job.chars > self.max_chars:
                break
            self.jobs.popleft()
            if not job.future.done():  # done: the client went away
                jobs.append(job)
                chars += job.chars
        return jobs

    async def _run_jobs(self, jobs: list[Job]) -> None:
        # A method of its own so that nothing refers to the requests' models once they are
        # answered: a model swapped out must not be kept alive by an idle batcher.
        for loaded in {id(j.loaded): j.loaded for j in jobs}.values():
            await self._run_group(loaded, [j for j in jobs if j.loaded is loaded])

    async def _run_group(self, loaded: LoadedModel, group: list[Job]) -> None:
        docs = [d for j in group for d in j.docs]
        items = [i for j in group for i in j.items]
        ks = [k for j in group for k in j.ks]
        explained = any(j.explain for j in group)
        explain = [j.explain for j in group for _ in j.docs] if explained else None
        self.running = group
        try:
            if self.inline and sum(map(len, docs)) < INLINE_CALL_CHARS:
                results = predict_items(loaded, docs, items, ks, self.sink, explain)
            else:
                results = await asyncio.to_thread(
                    predict_items, loaded, docs, items, ks, self.sink, explain
                )
        except Exception as error:
            log.exception("model call failed for %d items", len(items))
            for job in group:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self.running = []
        start = 0
        for job in group:
            end = start + len(job.items)
            if not job.future.done():  # done: the client went away, or waited too long
                job.future.set_result(results[start:end])
            start = end


class PredictionBatcher:
    """Every model call of a worker, from two lanes that run side by side.

    Single predictions are coalesced into one call (up to max_items); batches run one per
    call. Short calls of single predictions run on the event loop: handing each to a thread
    and back cost more than the call itself (2 workers at concurrency 16, gathering on, the
    model before digit folding: about 2,850 req/s through a thread, 3,300 inline). Longer
    ones, and batches, run in a thread, so the loop is never held for more than a few
    milliseconds; a single prediction's deadline is checked when the loop is free, so one
    that expires during such a call is answered by it. Each lane makes one call at a time,
    so a worker holds at most one batch's worth of model memory (which the request budget
    bounds) plus one call of single predictions, and a flood of batches never makes a single
    prediction wait for them. A full queue, or a wait longer than predict_timeout_seconds,
    is a 503. Each request keeps the model it arrived with, so requests in flight during a
    swap finish on the old model.
    """

    def __init__(self, settings: Settings, sink: Sink | None = None, max_items: int = 64):
        api = settings.api
        self.timeout = api.predict_timeout_seconds
        # A quarter of the budget per call of single predictions (64 real titles make about
        # 9,000 characters; one item at most 12,006), so that a worker running both lanes
        # at once stays near one worst request's memory.
        self.singles = Lane(
            api.queue_size, max_items, api.max_request_chars // 4, sink, inline=True
        )
        self.batches = Lane(api.batch_queue_size, 1, api.max_request_chars, sink)

    def lane(self, items: int) -> Lane:
        return self.singles if items == 1 else self.batches

    async def predict(
        self,
        loaded: LoadedModel,
        docs: list[str],
        items: list,
        ks: list[int],
        explain: bool = False,
    ) -> list[dict]:
        """The items' results, once the model has run them; Overloaded when it cannot."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        job = Job(loaded, docs, items, ks, deadline, explain=explain)
        lane = self.lane(len(items))
        lane.put(job)
        try:
            return await job.future  # expire_forever fails it with Overloaded when late
        except asyncio.CancelledError:  # the client went away
            lane.forget(job)
            raise

    async def expire_forever(self) -> None:
        """Fail late jobs, a few times per timeout: one timer for all, where asyncio.wait_for
        per request cost a timer each on the hot path."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self.timeout / 4, 0.5))
            for lane in (self.singles, self.batches):
                lane.expire(loop.time(), self.timeout)

    async def run_forever(self) -> None:
        await asyncio.gather(
            self.singles.run_forever(), self.batches.run_forever(), self.expire_forever()
        )

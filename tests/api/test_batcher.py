"""The batcher's lanes: where the model runs, and how single predictions are gathered."""

from __future__ import annotations

import asyncio
import threading

from prodcat.config import Settings
from prodcat.serving import predictor
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.predictor import PredictionBatcher

DOCS = ["console de jeux", "piscine hors sol", "figurine star wars", "cartouche d'encre"]


class RecordingModel(LoadedModel):
    """The real small model, noting each call's size and the thread it ran in; it raises
    while fail is set."""

    def __init__(self, model: LoadedModel):
        super().__init__(model.model, model.version, model.source, model.metadata)
        self.calls: list[tuple[int, int]] = []
        self.fail = False

    def predict_documents(self, documents):
        self.calls.append((len(documents), threading.get_ident()))
        if self.fail:
            raise RuntimeError("the model failed")
        return super().predict_documents(documents)


def run_with_batcher(scenario) -> None:
    async def main() -> None:
        batcher = PredictionBatcher(Settings(api={"log_predictions": False}))
        running = asyncio.create_task(batcher.run_forever())
        try:
            await scenario(batcher)
        finally:
            running.cancel()

    asyncio.run(main())


def predict_one(batcher: PredictionBatcher, model: LoadedModel, doc: str):
    return batcher.predict(model, [doc], [None], [3])


def test_single_predictions_run_on_the_loop_and_batches_in_a_thread(small_model):
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        loop_thread = threading.get_ident()
        single = await predict_one(batcher, model, DOCS[0])
        batch = await batcher.predict(model, DOCS[:2], [None, None], [3, 3])
        assert len(single) == 1 and len(batch) == 2
        assert model.calls[0] == (1, loop_thread)
        assert model.calls[1][0] == 2 and model.calls[1][1] != loop_thread

    run_with_batcher(scenario)


def queue_later(batcher: PredictionBatcher, model: LoadedModel, doc: str, delay: float):
    """A future holding the task of a prediction put in the queue delay seconds from now."""
    loop = asyncio.get_running_loop()
    late = loop.create_future()
    loop.call_later(delay, lambda: late.set_result(
        asyncio.ensure_future(predict_one(batcher, model, doc))))  # fmt: skip
    return late


def test_right_after_a_call_of_several_the_lane_gathers(small_model, monkeypatch):
    monkeypatch.setattr(predictor, "GATHER_SECONDS", 0.2)  # wide: a slow CI stalls for less
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        # Two requests at once make one call of two; the lane then pauses before the next.
        await asyncio.gather(*(predict_one(batcher, model, d) for d in DOCS[:2]))
        late = queue_later(batcher, model, DOCS[3], 0.02)
        first = await predict_one(batcher, model, DOCS[2])
        second = await (await late)
        assert [size for size, _ in model.calls] == [2, 2]  # both joined the same call
        assert first[0]["top_k"] and second[0]["top_k"]

    run_with_batcher(scenario)


def test_an_idle_lane_sends_a_lone_request_straight_through(small_model, monkeypatch):
    monkeypatch.setattr(predictor, "GATHER_SECONDS", 0.2)
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        await asyncio.gather(*(predict_one(batcher, model, d) for d in DOCS[:2]))
        await asyncio.sleep(0.5)  # the pause found nothing: the lane is idle
        late = queue_later(batcher, model, DOCS[3], 0.05)
        await predict_one(batcher, model, DOCS[2])
        await (await late)
        assert [size for size, _ in model.calls] == [2, 1, 1]  # no pause held the first

    run_with_batcher(scenario)


def test_a_long_call_of_single_predictions_runs_in_a_thread(small_model):
    model = RecordingModel(small_model)
    long_doc = "console " * (predictor.INLINE_CALL_CHARS // 8 + 1)

    async def scenario(batcher: PredictionBatcher) -> None:
        await predict_one(batcher, model, long_doc)
        assert model.calls[0][1] != threading.get_ident()

    run_with_batcher(scenario)


def test_a_failing_inline_call_fails_its_requests_and_the_lane_goes_on(small_model):
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        model.fail = True
        outcomes = await asyncio.gather(*(predict_one(batcher, model, d) for d in DOCS[:3]),
                                        return_exceptions=True)  # fmt: skip
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        model.fail = False
        assert (await predict_one(batcher, model, DOCS[3]))[0]["top_k"]

    run_with_batcher(scenario)

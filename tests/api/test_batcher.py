"""The batcher's lanes: where the model runs, and how single predictions are gathered."""

from __future__ import annotations

import asyncio
import threading

from prodcat.config import Settings
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.predictor import GATHER_SECONDS, PredictionBatcher

DOCS = ["console de jeux", "piscine hors sol", "figurine star wars", "cartouche d'encre"]


class RecordingModel(LoadedModel):
    """The real small model, noting each call's size and the thread it ran in."""

    def __init__(self, model: LoadedModel):
        super().__init__(model.model, model.version, model.source, model.metadata)
        self.calls: list[tuple[int, int]] = []

    def predict_documents(self, documents):
        self.calls.append((len(documents), threading.get_ident()))
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


def test_under_load_a_request_arriving_within_the_gathering_joins_the_call(small_model):
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        # Two requests at once: one call of two, which marks the lane as busy.
        await asyncio.gather(*(predict_one(batcher, model, d) for d in DOCS[:2]))
        assert [size for size, _ in model.calls] == [2]
        # Now one request, and another a fifth of the gathering later: one call of two.
        # Timers fire in deadline order, so the late one is queued before the lane's pause ends.
        loop = asyncio.get_running_loop()
        late = loop.create_future()
        loop.call_later(GATHER_SECONDS / 5, lambda: late.set_result(
            asyncio.ensure_future(predict_one(batcher, model, DOCS[3]))))  # fmt: skip
        first = await predict_one(batcher, model, DOCS[2])
        second = await (await late)
        assert [size for size, _ in model.calls] == [2, 2]
        assert first[0]["top_k"] and second[0]["top_k"]

    run_with_batcher(scenario)


def test_a_lone_request_after_a_lone_request_is_not_held(small_model):
    model = RecordingModel(small_model)

    async def scenario(batcher: PredictionBatcher) -> None:
        await predict_one(batcher, model, DOCS[0])
        loop = asyncio.get_running_loop()
        late = loop.create_future()
        loop.call_later(GATHER_SECONDS / 5, lambda: late.set_result(
            asyncio.ensure_future(predict_one(batcher, model, DOCS[1]))))  # fmt: skip
        await predict_one(batcher, model, DOCS[2])
        await (await late)
        # The previous call had one item: no gathering, so the late request has its own call.
        assert [size for size, _ in model.calls] == [1, 1, 1]

    run_with_batcher(scenario)

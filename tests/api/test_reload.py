"""Hot reload: the champion moves while requests keep coming; none fails, both versions answer."""

from __future__ import annotations

import asyncio
import copy
import threading

from fastapi.testclient import TestClient

from prodcat.config import get_settings
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel, ModelUnavailable
from prodcat.serving.reloader import REFUSED_RETRY_POLLS, ModelReloader
from prodcat.serving.state import ModelState

from ..models import wait_until
from .conftest import settings_without_log


class MovingAlias:
    """Stands for the registry: which version the alias names, and loading it.

    While `held` is set, a load waits until the test releases it: a load that takes as long
    as the test wants, during which requests must keep being answered.
    """

    def __init__(self, models: dict[str, LoadedModel]):
        self.models, self.version = models, "7"
        self.held, self.loading, self.release = False, threading.Event(), threading.Event()

    def probe(self, settings) -> str:
        return self.version

    def load(self, settings) -> LoadedModel:
        if self.held:
            self.loading.set()
            assert self.release.wait(120), "the test never released the load"
        return self.models[self.version]


def test_a_swap_under_load_fails_no_request(small_model):
    newer = LoadedModel(copy.deepcopy(small_model.model), "8", "registry", small_model.metadata)
    alias = MovingAlias({"7": small_model, "8": newer})
    app = create_app(settings_without_log(), loader=alias.load, probe=alias.probe, poll=False)
    # Each answer keeps the phase read before its request was sent and after its answer came:
    # a label can only lag, so "answered before the release" and "sent after the reload
    # returned" are certain. No clock is read.
    answers, failures, stop, phase = [], [], threading.Event(), ["before"]
    token = get_settings().api.admin_token.get_secret_value()

    def sent_in(wanted: str) -> int:
        return sum(sent == wanted for sent, _, _ in list(answers))

    with TestClient(app) as client:

        def hammer() -> None:
            while not stop.is_set():
                sent = phase[0]
                response = client.post("/predict/", json={"title": "console manette"})
                if response.status_code != 200:
                    failures.append(response.status_code)
                else:
                    answers.append((sent, phase[0], response.json()["model_version"]))

        def reload_now(into: list) -> None:
            into.append(client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"}))

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: sent_in("before") > 10, timeout=60, what="answers before")
            alias.version, alias.held, reload = "8", True, []
            admin = threading.Thread(target=reload_now, args=(reload,))
            admin.start()
            assert alias.loading.wait(60), "the reload never started loading"
            # The load is under way and held: requests must still be answered meanwhile.
            during = len(answers)
            wait_until(lambda: len(answers) > during + 10, timeout=60, what="answers meanwhile")
            phase[0] = "released"
            alias.release.set()
            admin.join(60)
            phase[0] = "after"
            wait_until(lambda: sent_in("after") > 10, timeout=60, what="answers after")
        finally:
            stop.set()
            alias.release.set()
            for worker in workers:
                worker.join()

    assert reload[0].status_code == 200
    assert reload[0].json() == {"reloaded": True, "model_version": "8"}
    assert failures == []
    assert {v for _, came, v in answers if came == "before"} == {"7"}  # the load was held
    assert {v for sent, _, v in answers if sent == "after"} == {"8"}  # the reload answered


def test_reload_needs_the_admin_token(client):
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "admin bearer token" in wrong.json()["detail"]


def test_the_model_is_hidden_from_the_collector_and_a_swapped_out_one_is_freed(small_model):
    import gc
    import weakref

    models = {v: LoadedModel(copy.deepcopy(small_model.model), v, "registry", {}) for v in "78"}
    models["7"].model.cycle = models["7"].model  # only the cyclic collector can free it
    old_pipeline = weakref.ref(models["7"].model)
    alias = MovingAlias(models)
    app = create_app(settings_without_log(), loader=alias.load, probe=alias.probe, poll=False)
    token = get_settings().api.admin_token.get_secret_value()
    with TestClient(app) as client:
        assert gc.get_freeze_count() > 0  # frozen after the start-up load
        assert client.post("/predict/", json={"title": "console"}).json()["model_version"] == "7"
        app.state.reloader.freeze_delay = 0.2
        alias.version, models = "8", None
        alias.models = {"8": alias.models["8"]}
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})
        assert reload.json() == {"reloaded": True, "model_version": "8"}
        wait_until(app.state.reloader._freeze.done, timeout=10, what="the heap to be refrozen")
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert old_pipeline() is None  # neither the batcher nor the frozen heap keeps it
        assert client.post("/predict/", json={"title": "console"}).json()["model_version"] == "8"


class RefusingRegistry:
    """The alias names `version`; version 8's files fail their digest, so a load of it
    serves the local copy (the last version that served) and says it refused 8. Counts
    the loads."""

    def __init__(self, good: LoadedModel):
        self.good, self.version, self.loads, self.copy = good, "8", 0, good.version

    def probe(self, settings) -> str:
        return self.version

    def load(self, settings) -> LoadedModel:
        self.loads += 1
        if self.version == "8":
            refused = "version 8 refused"
            return LoadedModel(self.good.model, self.copy, "local-copy", {}, refused, "8")
        self.copy = self.version
        return LoadedModel(self.good.model, self.version, "registry")


def test_a_refused_champion_is_fetched_again_only_when_the_alias_moves_or_on_demand(small_model):
    registry = RefusingRegistry(small_model)
    state = ModelState("m", current=small_model)
    reloader = ModelReloader(state, settings_without_log(), registry.load, registry.probe)

    async def polls() -> list[tuple[bool, int]]:
        seen = []
        for force, version in [(False, "8"), (False, "8"), (False, "8"), (True, "8"),
                               (False, "9"), (False, "8")]:  # fmt: skip
            registry.version = version
            swapped = await reloader.reload_if_changed(force=force)
            seen.append((swapped, registry.loads, state.current.version))
        reloader.stop()
        return seen

    assert asyncio.run(polls()) == [
        (False, 1, "7"),  # refused: the copy of 7 keeps serving
        (False, 1, "7"),  # polls skip the refused version: no download
        (False, 1, "7"),
        (False, 2, "7"),  # /admin/reload asks again
        (True, 3, "9"),  # the alias moved on
        (False, 4, "9"),  # back to 8: a new move, tried once more
    ]
    assert state.detail == "version 8 refused" and state.refused == "8"


def test_a_refused_champion_is_tried_again_every_so_many_polls(small_model):
    registry = RefusingRegistry(small_model)
    state = ModelState("m", current=small_model)
    reloader = ModelReloader(state, settings_without_log(), registry.load, registry.probe)

    async def poll(times: int) -> int:
        for _ in range(times):
            await reloader.reload_if_changed()
        return registry.loads

    assert asyncio.run(poll(1)) == 1  # refused
    assert asyncio.run(poll(REFUSED_RETRY_POLLS - 1)) == 1  # skipped
    assert asyncio.run(poll(1)) == 2  # tried again: its files may have been repaired
    registry.version, registry.copy = "10", "7"  # repaired under a new version: served
    assert asyncio.run(poll(1)) == 3 and state.current.version == "10"


def test_a_refusal_at_start_is_remembered_by_the_first_poll(small_model):
    registry = RefusingRegistry(small_model)
    app = create_app(settings_without_log(), loader=registry.load, probe=registry.probe,
                     poll=False)  # fmt: skip
    with TestClient(app) as client:
        assert registry.loads == 1 and app.state.models.refused == "8"
        assert asyncio.run(app.state.reloader.reload_if_changed()) is False
        assert registry.loads == 1  # not downloaded again
        assert "version 8 refused" in client.get("/ready").json()["detail"]


def test_a_refused_champion_with_no_copy_to_serve_is_not_fetched_on_every_poll(small_model):
    loads = []

    def refuse(settings) -> LoadedModel:
        loads.append(1)
        raise ModelUnavailable("version 8 refused; and there is no local copy", refused="8")

    state = ModelState("m")
    reloader = ModelReloader(state, settings_without_log(), refuse, lambda settings: "8")
    for _ in range(3):
        assert asyncio.run(reloader.reload_if_changed()) is False
    assert len(loads) == 1 and state.current is None

"""Hot reload: the champion moves while requests keep coming; none fails, both versions answer."""

from __future__ import annotations

import copy
import threading
import time

from fastapi.testclient import TestClient

from prodcat.config import get_settings
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel

from ..models import wait_until
from .conftest import settings_without_log


class MovingAlias:
    """Stands for the registry: which version the alias names, and loading it (slowly)."""

    def __init__(self, models: dict[str, LoadedModel]):
        self.models, self.version = models, "7"

    def probe(self, settings) -> str:
        return self.version

    def load(self, settings) -> LoadedModel:
        time.sleep(0.5)  # a slow load must not stall requests
        return self.models[self.version]


def test_a_swap_under_load_fails_no_request(small_model):
    newer = LoadedModel(copy.deepcopy(small_model.model), "8", "registry", small_model.metadata)
    alias = MovingAlias({"7": small_model, "8": newer})
    app = create_app(settings_without_log(), loader=alias.load, probe=alias.probe, poll=False)
    answers, failures, stop = [], [], threading.Event()

    with TestClient(app) as client:

        def hammer() -> None:
            while not stop.is_set():
                started = time.monotonic()
                response = client.post("/predict/", json={"title": "console manette"})
                if response.status_code != 200:
                    failures.append(response.status_code)
                else:
                    answers.append((started, time.monotonic(), response.json()["model_version"]))

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        alias.version = "8"
        token = get_settings().api.admin_token.get_secret_value()
        reload_started = time.monotonic()
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})
        reload_done = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.join()

    assert reload.status_code == 200 and reload.json() == {"reloaded": True, "model_version": "8"}
    assert failures == []
    before = {v for start, end, v in answers if end < reload_started}
    after = {v for start, end, v in answers if start > reload_done}
    assert before == {"7"} and after == {"8"}
    versions = [v for _, _, v in answers]
    assert versions.count("7") > 10 and versions.count("8") > 10
    # the 0.5 s load ran off the request path: requests kept being answered during it
    assert any(reload_started < end < reload_done for _, end, _ in answers)


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

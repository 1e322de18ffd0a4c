"""The cost budget (counted after cleaning), the body limit, back-pressure, and settings read
from the app rather than from the environment."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from prodcat.config import Settings
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel

from ..models import wait_until


def make_client(model: LoadedModel, **api) -> TestClient:
    settings = Settings(api={"log_predictions": False, **api})
    return TestClient(create_app(settings, loader=lambda s: model, poll=False))


def test_lengths_are_counted_after_cleaning(client):
    # 60 raw characters that NFKD makes 1,080: over the title's 1,000.
    expanded = client.post("/predict/", json={"title": "\ufdfa" * 60})
    assert expanded.status_code == 422
    assert "title must be at most 1000 characters after cleaning (got 1080)" in expanded.text
    # 1,500 raw characters of markup and entities that clean to 300: accepted.
    marked_up = "<b>jeu</b>&nbsp;" * 100
    assert len(marked_up) == 1600
    assert client.post("/predict/", json={"title": marked_up}).status_code == 200


def test_a_raw_field_far_over_its_limit_is_refused_before_cleaning(client):
    response = client.post("/predict/", json={"title": "a", "description": "b" * 40_001})
    assert response.status_code == 422
    assert "description must be at most 40000 characters before cleaning" in response.text


def test_a_request_over_its_character_budget_is_413_naming_limit_and_size(small_model):
    with make_client(small_model, max_request_chars=500) as client:
        items = [{"title": "console manette " * 10}] * 4  # 4 x (159 * 2 + 3) = 1,284
        response = client.post("/predict/batch", json={"items": items})
        assert response.status_code == 413
        detail = response.json()["detail"]
        assert "1284 characters after cleaning" in detail and "limit is 500" in detail
        assert "PRODCAT_API__MAX_REQUEST_CHARS" in detail
        within = client.post("/predict/batch", json={"items": items[:1]})
        assert within.status_code == 200


def test_a_body_over_the_limit_is_refused_before_parsing(small_model):
    with make_client(small_model, max_body_bytes=1000) as client:
        body = b'{"title": "' + b"a" * 2000 + b'"}'
        declared = client.post("/predict/", content=body,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert declared.status_code == 413
        assert "2013 bytes" in declared.text and "PRODCAT_API__MAX_BODY_BYTES" in declared.text

        def chunks():  # no Content-Length: counted as it arrives
            yield body[:600]
            yield body[600:]

        streamed = client.post("/predict/", content=chunks(),
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert streamed.status_code == 413 and "more than 1000 bytes" in streamed.text
        assert client.post("/predict/", json={"title": "console"}).status_code == 200


class HeldModel(LoadedModel):
    """The real small model, whose calls wait until the test lets them go."""

    def __init__(self, model: LoadedModel):
        super().__init__(model.model, model.version, model.source, model.metadata)
        self.release, self.calls = threading.Event(), 0

    def predict_documents(self, documents):
        self.calls += 1
        self.release.wait(30)
        return super().predict_documents(documents)


def test_a_full_queue_and_a_long_wait_are_503_with_retry_after(small_model):
    held = HeldModel(small_model)
    with make_client(held, batch_queue_size=1, predict_timeout_seconds=1) as client:
        batch = {"items": [{"title": "console"}, {"title": "piscine"}]}
        answers = []
        first = threading.Thread(target=lambda: answers.append(
            client.post("/predict/batch", json=batch)))  # fmt: skip
        first.start()
        wait_until(lambda: held.calls == 1, 10, "the first batch to reach the model")
        second = threading.Thread(target=lambda: answers.append(
            client.post("/predict/batch", json=batch)))  # fmt: skip
        second.start()  # waits in the queue, which is then full
        wait_until(lambda: len(client.app.state.batcher.batches.jobs) == 1, 10, "a queued batch")
        full = client.post("/predict/batch", json=batch)
        assert full.status_code == 503 and full.headers["Retry-After"] == "1"
        assert "waiting for the model" in full.json()["detail"]
        first.join()
        second.join()
        assert sorted(a.status_code for a in answers) == [503, 503]  # waited over 1 s
        assert all("did not answer within 1 s" in a.text for a in answers)
        held.release.set()
        assert client.post("/predict/batch", json=batch).status_code == 200


@pytest.mark.parametrize("top_k", [2, 3])
def test_routes_read_the_apps_settings_not_the_environments(small_model, top_k):
    with make_client(small_model, max_top_k=2) as client:
        response = client.post(f"/predict/?top_k={top_k}", json={"title": "console"})
        assert response.status_code == (200 if top_k == 2 else 422)


def test_metrics_report_the_workers_and_their_memory(client):
    text = client.get("/metrics").text
    assert "prodcat_api_workers 1.0" in text
    resident = [line for line in text.splitlines()
                if line.startswith("prodcat_api_worker_resident_memory_bytes ")]  # fmt: skip
    assert resident and float(resident[0].split()[1]) > 50 * 2**20

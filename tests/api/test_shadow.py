"""The shadow challenger scores sampled live inputs off the request path: its agreement and
latency reach /metrics, and a challenger that crashes changes no response."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from prodcat.config import Settings
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel
from prodcat.training.features import ProductTextCleaner

from ..models import train_small_model, wait_until

TITLES = ["piscine ronde", "console manette", "livre roman poche", "bache filtration"] * 10
CHAMPION = LoadedModel(train_small_model(), "7", "registry")


class Crashing(ClassifierMixin, BaseEstimator):
    """A challenger whose every prediction fails."""

    classes_ = ["10", "40"]

    def predict_proba(self, X):
        raise RuntimeError("the challenger crashed")


def shadow_app(sample: float):
    settings = Settings(api={"log_predictions": False, "shadow_sample": sample})
    return create_app(settings, loader=lambda s: CHAMPION, poll=False)


def metric(client: TestClient, prefix: str) -> float:
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def answers(client: TestClient) -> list[dict]:
    found = [client.post("/predict/", json={"title": t}) for t in TITLES]
    assert all(r.status_code == 200 for r in found)
    return [r.json() for r in found]


def test_the_challenger_scores_sampled_inputs_and_its_agreement_reaches_metrics():
    with TestClient(shadow_app(1.0)) as client:
        client.app.state.shadow.challenger = LoadedModel(train_small_model(), "9", "registry")
        agreed = 'prodcat_api_shadow_predictions_total{agrees="true",challenger_version="9"}'
        before = metric(client, agreed)
        served = answers(client)
        assert {a["model_version"] for a in served} == {"7"}  # the champion answers
        # The same model as challenger: it agrees on every input it scores.
        wait_until(lambda: metric(client, agreed) - before >= len(TITLES), what="shadow scores")
        assert metric(client, "prodcat_api_shadow_seconds_per_item_count") >= len(TITLES)


def test_no_challenger_or_no_sample_means_no_shadow_work():
    with TestClient(shadow_app(0.0)) as client:
        client.app.state.shadow.challenger = LoadedModel(train_small_model(), "11", "registry")
        answers(client)
        assert metric(client, 'prodcat_api_shadow_predictions_total{agrees="true",'
                      'challenger_version="11"}') == 0  # fmt: skip
        assert len(client.app.state.shadow._buffer) == 0


def test_a_crashing_challenger_changes_no_response():
    with TestClient(shadow_app(0.0)) as client:
        expected = answers(client)
    with TestClient(shadow_app(1.0)) as client:
        broken = Pipeline([("clean", ProductTextCleaner()), ("clf", Crashing())])
        client.app.state.shadow.challenger = LoadedModel(broken, "13", "registry")
        before = metric(client, "prodcat_api_shadow_failures_total")
        assert answers(client) == expected
        wait_until(lambda: metric(client, "prodcat_api_shadow_failures_total") > before,
                   what="the crash to be counted")  # fmt: skip
        assert answers(client) == expected

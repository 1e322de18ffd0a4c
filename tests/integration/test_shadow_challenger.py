"""The shadow challenger on the real stack: the API follows the registry's `challenger` alias,
both answers land in prediction_log, the agreement reaches /metrics, and the gate's record
carries it beside the evaluation-set scores."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from prodcat.db import get_engine
from prodcat.serving.app import create_app
from prodcat.serving.prediction_log import hash_input
from prodcat.training.gate import GateDecision, _tag_decision, find_live_agreement
from prodcat.training.registry import CHALLENGER, get_client, promote_version, set_challenger

from ..api.test_shadow import metric
from ..models import register_small_models, wait_until

FAILURES = "prodcat_api_shadow_failures_total"

pytestmark = pytest.mark.integration


@pytest.fixture
def ours(settings):
    name = f"prodcat-shadow-{uuid.uuid4().hex[:6]}"
    return settings.model_copy(update={
        "mlflow": settings.mlflow.model_copy(update={"model_name": name}),
        "api": settings.api.model_copy(update={"shadow_sample": 1.0, "log_flush_seconds": 0.2,
                                               "reload_interval_seconds": 0.5}),
    })  # fmt: skip


def shadow_rows(settings, version: str, titles: list[str]) -> list:
    """This test's shadow answers (other runs of it may have logged the same version)."""
    hashes = [hash_input(title, "") for title in titles]
    with get_engine(settings).connect() as conn:
        return conn.execute(text(
            "select input_hash, category_code, agrees from prediction_log "
            "where shadow and model_version = :v and input_hash = any(:h)"),
            {"v": version, "h": hashes}).all()  # fmt: skip


def test_the_challenger_alias_is_shadowed_and_its_agreement_recorded(ours):
    champion, challenger, newest = register_small_models(ours, ours.mlflow.model_name, 3)
    set_challenger(challenger, ours)
    titles = [f"piscine ronde {uuid.uuid4().hex[:6]}" for _ in range(20)]
    with TestClient(create_app(ours)) as client:
        wait_until(lambda: getattr(client.app.state.shadow.challenger, "version", None)
                   == challenger, what="the challenger to load")  # fmt: skip
        for title in titles:
            answer = client.post("/predict/", json={"title": title}).json()
            assert answer["model_version"] == champion
        rows = wait_until(lambda: len(found := shadow_rows(ours, challenger, titles)) == len(titles)
                          and found, what="shadow answers in the log")  # fmt: skip
        page = client.get("/metrics").text
    agreed = f'{{agrees="true",challenger_version="{challenger}"}}'
    assert f"prodcat_api_shadow_predictions_total{agreed}" in page
    with get_engine(ours).connect() as conn:
        served = {h for (h,) in conn.execute(text(
            "select input_hash from prediction_log where not shadow and model_version = :v"),
            {"v": champion})}  # fmt: skip
    assert {h for h, _, _ in rows} <= served  # both answers to the same inputs
    assert all(agrees for _, _, agrees in rows)  # the same small model: full agreement

    # Gating the newest version, the record shows the shadowed challenger's live agreement.
    live = find_live_agreement(newest, ours)
    assert live["shadowed_version"] == challenger and live["shadowed_rows"] >= len(titles)
    assert live["shadowed_agreement"] is not None
    decision = GateDecision(newest, champion, 0.8, 0.81, False, "test", 0.02, **live)
    _tag_decision(decision, ours)
    tags = get_client(ours).get_model_version(ours.mlflow.model_name, newest).tags
    assert tags["gate.shadowed_version"] == challenger
    assert int(tags["gate.shadowed_rows"]) == live["shadowed_rows"]

    promote_version(challenger, ours)  # a promoted challenger is no longer shadowed
    aliases = get_client(ours).get_registered_model(ours.mlflow.model_name).aliases
    assert CHALLENGER not in aliases


def test_a_registered_challenger_that_crashes_changes_no_response(ours):
    import mlflow
    import mlflow.sklearn
    from sklearn.pipeline import Pipeline

    from prodcat.training.features import ProductTextCleaner
    from prodcat.training.registry import use_mlflow

    from ..api.test_shadow import Crashing

    champion = register_small_models(ours, ours.mlflow.model_name, 1)[0]
    titles = [f"console manette {i}" for i in range(30)]
    baseline = ours.model_copy(update={
        "api": ours.api.model_copy(update={"shadow_sample": 0.0})})  # fmt: skip
    with TestClient(create_app(baseline)) as client:
        expected = [client.post("/predict/", json={"title": t}).json() for t in titles]
    use_mlflow(ours)
    with mlflow.start_run(run_name="crashing-challenger"):
        info = mlflow.sklearn.log_model(
            Pipeline([("clean", ProductTextCleaner()), ("clf", Crashing())]), name="model",
            registered_model_name=ours.mlflow.model_name, serialization_format="cloudpickle",
        )  # fmt: skip
    set_challenger(str(info.registered_model_version), ours)
    with TestClient(create_app(ours)) as client:
        wait_until(lambda: client.app.state.shadow.challenger is not None,
                   what="the crashing challenger to load")  # fmt: skip
        # The counter is the process's: earlier tests add to it.
        before = metric(client, FAILURES)
        answers = [client.post("/predict/", json={"title": t}) for t in titles]
        wait_until(lambda: metric(client, FAILURES) > before, what="the crash to be counted")
    assert all(a.status_code == 200 for a in answers)
    assert [a.json() for a in answers] == expected
    assert {a["model_version"] for a in expected} == {champion}

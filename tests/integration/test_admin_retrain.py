"""POST /admin/retrain starts a real ml_pipeline run through Airflow's REST API, with reason
`manual`; GET /admin/retrain/{id} follows it to its end."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel

from ..e2e.platform import Airflow
from ..models import train_small_model

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings):
    model = LoadedModel(train_small_model(), "1", "registry", {})
    app = create_app(settings.model_copy(update={
        "api": settings.api.model_copy(update={"log_predictions": False})}),
        loader=lambda s: model, poll=False)  # fmt: skip
    token = settings.api.admin_token.get_secret_value()
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture
def airflow(settings):
    airflow = Airflow(settings)
    paused = airflow.get("/dags/ml_pipeline")["is_paused"]
    airflow.patch("/dags/ml_pipeline", {"is_paused": False})
    yield airflow
    airflow.patch("/dags/ml_pipeline", {"is_paused": paused})


def test_retrain_starts_a_real_ml_pipeline_run_and_follows_it(api, airflow):
    started = api.post("/admin/retrain")
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["dag_id"] == "ml_pipeline" and run["conf"] == {"reason": "manual"}
    seen = airflow.get(f"/dags/ml_pipeline/dagRuns/{run['dag_run_id']}")
    assert seen["conf"] == {"reason": "manual"} and seen["run_type"] == "manual"
    states, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        state = api.get(f"/admin/retrain/{run['dag_run_id']}").json()["state"]
        states.append(state)
        if state in ("success", "failed"):
            break
        time.sleep(2)
    assert states[-1] == "success", states
    tasks = airflow.task_states("ml_pipeline", run["dag_run_id"])
    assert tasks["check_retraining"] == "success", tasks


def test_an_unknown_run_is_a_404_naming_it(api):
    response = api.get("/admin/retrain/manual__nothing")
    assert response.status_code == 404
    assert "manual__nothing" in response.json()["detail"]

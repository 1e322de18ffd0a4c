"""POST /admin/retrain and GET /admin/retrain/{id}: behind the admin token, and a clear 503
when Airflow cannot be reached (a real closed port here; tests/integration starts real runs)."""

from contextlib import contextmanager

from fastapi.testclient import TestClient

from prodcat.config import get_settings
from prodcat.serving.app import create_app

from .conftest import settings_without_log


@contextmanager
def admin_client(model):
    """A client of an app whose Airflow is a closed port, and the admin token's header."""
    token = get_settings().api.admin_token.get_secret_value()
    app = create_app(settings_without_log(), loader=lambda s: model, poll=False)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_retraining_needs_the_admin_token(client):
    assert client.post("/admin/retrain").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/admin/retrain/manual__x", headers=wrong).status_code == 401


def test_airflow_down_is_a_503_that_says_so(small_model):
    with admin_client(small_model) as (client, headers):
        for response in (client.post("/admin/retrain", headers=headers),
                         client.get("/admin/retrain/manual__1", headers=headers)):  # fmt: skip
            assert response.status_code == 503
            assert "cannot be reached" in response.json()["detail"]
            assert "retry later" in response.json()["detail"]
            assert response.headers["Retry-After"] == "30"
        assert client.post("/predict/", json={"title": "console"}).status_code == 200


def test_a_run_id_airflow_could_not_have_made_is_a_404_without_asking_it(small_model):
    # Airflow is down here: a 404 rather than a 503 shows the id was refused before any call.
    with admin_client(small_model) as (client, headers):
        for run_id in ("%1F", "...", "x%20y", "run%0Aid", "%C3%A9"):
            response = client.get(f"/admin/retrain/{run_id}", headers=headers)
            assert response.status_code == 404, run_id
            assert "has no run" in response.json()["detail"]

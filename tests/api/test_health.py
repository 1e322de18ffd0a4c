from fastapi.testclient import TestClient

from prodcat.serving.app import create_app


def test_health_answers_before_any_model_exists():
    with TestClient(create_app()) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_not_ready_without_a_model():
    with TestClient(create_app()) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["model_version"] is None
    assert "no champion" in body["detail"]


def test_metrics_expose_request_counts_by_route():
    with TestClient(create_app()) as client:
        client.get("/health")
        text = client.get("/metrics").text
    assert 'prodcat_api_requests_total{method="GET",route="/health",status="200"}' in text
    assert "prodcat_api_model_loaded 0.0" in text

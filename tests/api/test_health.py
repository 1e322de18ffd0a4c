def test_health_answers_before_any_model_exists(client_without_model):
    response = client_without_model.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_not_ready_without_a_model(client_without_model):
    response = client_without_model.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["model_version"] is None
    assert "'champion' alias" in body["detail"]


def test_metrics_expose_request_counts_by_route(client_without_model):
    client_without_model.get("/health")
    text = client_without_model.get("/metrics").text
    assert 'prodcat_api_requests_total{method="GET",route="/health",status="200"}' in text
    assert "prodcat_api_model_loaded 0.0" in text


def test_ready_reports_the_loaded_version(client):
    body = client.get("/ready").json()
    assert body == {"ready": True, "model_name": "prodcat-classifier", "model_version": "7",
                    "stale": False, "detail": None}  # fmt: skip

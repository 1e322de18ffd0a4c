"""GET /review and POST /feedback refuse bad requests before reading the database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from prodcat.serving.app import create_app

from .conftest import settings_without_log


def test_review_validates_its_query_and_needs_the_review_token(small_model):
    settings = settings_without_log()
    app = create_app(settings, loader=lambda s: small_model, poll=False)
    token = {"Authorization": f"Bearer {settings.review.token.get_secret_value()}"}
    with TestClient(app) as client:
        assert client.get("/review").status_code == 401
        assert client.get("/review", headers={"Authorization": "Bearer no"}).status_code == 401
        for query in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"limt": 5}):
            assert client.get("/review", params=query, headers=token).status_code == 422, query
        both = {"product_id": "1", "prediction_id": 1, "category_code": "10", "reviewer": "a"}
        assert client.post("/feedback", json=both, headers=token).status_code == 422
        blank = {"product_id": "1", "category_code": "10", "reviewer": " "}
        assert client.post("/feedback", json=blank, headers=token).status_code == 422

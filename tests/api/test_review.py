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


def test_feedback_with_a_nul_anywhere_is_a_422_not_a_database_error(small_model):
    # PostgreSQL refuses NUL in text; the fuzzer once got a 500 from category_code "\u0000".
    settings = settings_without_log()
    app = create_app(settings, loader=lambda s: small_model, poll=False)
    token = {"Authorization": f"Bearer {settings.review.token.get_secret_value()}"}
    good = {"product_id": "1", "category_code": "10", "reviewer": "alice"}
    with TestClient(app) as client:
        for field in good:
            for value in ("\u0000", f"a\u0000{good[field]}"):
                body = {**good, field: value}
                response = client.post("/feedback", json=body, headers=token)
                assert response.status_code == 422, body
        answer = {"prediction_id": 1, "category_code": "1\u00000", "reviewer": "bob"}
        assert client.post("/feedback", json=answer, headers=token).status_code == 422

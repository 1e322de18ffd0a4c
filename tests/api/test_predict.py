import pytest


def test_predict_returns_the_category_confidence_and_top_k(client):
    response = client.post(
        "/predict/", json={"title": "console nintendo", "description": "<b>neuf</b>"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["category_code"] == "40" and body["category_name"] == "Jeux vidéo"
    assert body["model_version"] == "7"
    assert len(body["top_k"]) == 3
    assert body["top_k"][0]["category_code"] == "40"
    confidences = [c["confidence"] for c in body["top_k"]]
    assert confidences == sorted(confidences, reverse=True) and abs(sum(confidences) - 1) < 1e-3
    names = {c["category_code"]: c["category_name"] for c in body["top_k"]}
    assert names == {"40": "Jeux vidéo", "10": "Livres", "2583": None}  # 2583 has no known name


def test_top_k_is_a_query_parameter(client):
    body = client.post("/predict/?top_k=1", json={"title": "piscine ronde"}).json()
    assert [c["category_code"] for c in body["top_k"]] == ["2583"]


def test_batch_keeps_the_order(client):
    items = [{"title": "roman poche"}, {"title": "pompe piscine"}, {"title": "manette console"}]
    response = client.post("/predict/batch", json={"items": items})
    assert response.status_code == 200
    codes = [p["category_code"] for p in response.json()["predictions"]]
    assert codes == ["10", "2583", "40"]


def test_model_endpoint_describes_what_is_served(client):
    body = client.get("/model").json()
    assert body["model_version"] == "7" and body["source"] == "registry"
    assert body["classes"] == ["10", "2583", "40"]
    assert body["metrics"] == {"eval_f1_weighted": 0.9}


def test_predict_without_a_model_is_503_with_the_reason(client_without_model):
    response = client_without_model.post("/predict/", json={"title": "x"})
    assert response.status_code == 503
    assert "champion" in response.json()["detail"]


def error_text(response) -> str:
    return str(response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "title", "Field required"),
        ({"title": "   "}, "title", "title must not be blank"),
        ({"title": "x" * 1001}, "title", "title must be at most 1000 characters"),
        ({"title": "ok", "description": "y" * 10_001}, "description",
         "description must be at most 10000 characters"),
        ({"title": 12}, "title", "Input should be a valid string"),
        ({"title": "ok", "colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_single_items_get_422_naming_the_field_and_rule(client, body, field, message):
    response = client.post("/predict/", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(field in e["loc"] and message in e["msg"] for e in detail), detail


def test_bad_batches_get_422(client):
    empty = client.post("/predict/batch", json={"items": []})
    assert empty.status_code == 422 and "at least one item" in error_text(empty)
    too_many = client.post("/predict/batch", json={"items": [{"title": "a"}] * 1001})
    assert too_many.status_code == 422 and "at most 1000 items" in error_text(too_many)


def test_non_json_and_non_utf8_bodies_get_422(client):
    headers = {"Content-Type": "application/json"}
    not_json = client.post("/predict/", content=b"title=hello", headers=headers)
    assert not_json.status_code == 422 and "json" in error_text(not_json).lower()
    latin1 = client.post("/predict/", content='{"title": "café"}'.encode("latin-1"),
                         headers=headers)  # fmt: skip
    assert latin1.status_code == 422
    assert "body must be UTF-8 encoded JSON (byte 0xe9 at position 14" in error_text(latin1)
    bad_escape = client.post("/predict/", content=b'{"title": "caf\\xe9"}', headers=headers)
    assert bad_escape.status_code == 422 and "json" in error_text(bad_escape).lower()


def test_top_k_over_the_limit_is_refused(client):
    response = client.post("/predict/?top_k=11", json={"title": "a"})
    assert response.status_code == 422 and "top_k must be at most 10" in error_text(response)


def test_explain_adds_exact_contributions_and_nothing_without_it(client, small_model):
    plain = client.post("/predict/", json={"title": "console nintendo"}).json()
    assert "explanation" not in plain
    body = client.post("/predict/?explain=true", json={"title": "console nintendo"}).json()
    explanation = body["explanation"]
    assert explanation["category_code"] == body["category_code"] == "40"
    listed = sum(f["contribution"] for f in explanation["features"])
    total = explanation["intercept"] + listed + explanation["other_features"]
    assert total == pytest.approx(explanation["margin"], abs=1e-5)
    assert any(f["ngram"] in ("console", "nintendo") for f in explanation["features"])
    assert explanation["runner_up"]["category_code"] == body["top_k"][1]["category_code"]
    assert explanation["runner_up"]["margin_gap"] > 0
    assert {k: v for k, v in body.items() if k != "explanation"} == plain


def test_batch_explains_every_item(client):
    items = [{"title": "roman poche"}, {"title": "pompe piscine"}]
    predictions = client.post("/predict/batch?explain=true", json={"items": items}).json()
    assert [p["explanation"]["category_code"] for p in predictions["predictions"]] == ["10", "2583"]


def test_a_model_that_cannot_explain_says_so():
    from fastapi.testclient import TestClient

    from prodcat.serving.app import create_app
    from prodcat.serving.model_store import LoadedModel

    from ..models import train_small_model
    from .conftest import settings_without_log

    trees = LoadedModel(train_small_model("xgboost"), "8", "registry", {})
    app = create_app(settings_without_log(), loader=lambda settings: trees, poll=False)
    with TestClient(app) as client:
        response = client.post("/predict/?explain=true", json={"title": "console"})
        assert response.status_code == 422
        assert "version 8 cannot explain" in response.json()["detail"]
        assert client.post("/predict/", json={"title": "console"}).status_code == 200


def test_one_model_call_explains_only_the_items_that_asked(small_model):
    # Single predictions are coalesced: one call may hold requests with and without explain.
    from prodcat.serving.predictor import predict_items

    docs = [small_model.cleaner.compose(*small_model.cleaner.clean_fields(t, ""))
            for t in ("console nintendo", "roman poche")]  # fmt: skip
    results = predict_items(small_model, docs, [None, None], [3, 3], None, [False, True])
    assert "explanation" not in results[0]
    assert results[1]["explanation"]["category_code"] == results[1]["category_code"] == "10"
    plain = predict_items(small_model, docs, [None, None], [3, 3])
    assert [r["top_k"] for r in plain] == [r["top_k"] for r in results]

"""POST /predict/'s plain path (serving/routes/predict.py, PlainPredictionRoute): requests
it takes skip FastAPI's dependency solving and get the answers FastAPI's path gives."""

from __future__ import annotations

from typing import Annotated

import fastapi.routing
import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient

from prodcat.config import Settings
from prodcat.serving.app import create_app
from prodcat.serving.deps import ModelDep, TopK, get_current_model
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.routes.predict import PlainPredictionRoute

JSON = {"Content-Type": "application/json"}
# ?top_k=3 is the default: the same request, sent FastAPI's way because it has a query.
FASTAPI_WAY = "/predict/?top_k=3"


@pytest.fixture
def solved(monkeypatch) -> list[str]:
    """The paths of the requests FastAPI solved dependencies for."""
    calls, solve = [], fastapi.routing.solve_dependencies

    async def counting(*, request, **kwargs):
        calls.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
        return await solve(request=request, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return calls


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "console nintendo"}',
        b'{"title": "Piscine <b>ronde</b> &amp; pompe", "description": "neuve, 3 m"}',
        '{"title": "café crème", "description": null}'.encode(),
        b'{"title": "roman", "title": "pompe piscine"}',  # the last key wins, both ways
    ],
)
def test_a_plain_request_skips_dependency_solving_and_gets_fastapis_answer(client, solved, body):
    plain = client.post("/predict/", content=body, headers=JSON)
    assert solved == []
    same = client.post(FASTAPI_WAY, content=body, headers=JSON)
    assert solved == [FASTAPI_WAY]
    assert plain.status_code == same.status_code == 200
    assert plain.json() == same.json() and same_headers(plain, same)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"title": "   "}', 422),  # the validator's own error
        (b'{"title": "ok", "colour": "red"}', 422),
        (b'{"title": 12}', 422),
        (b'{"title": "ok"', 422),  # not JSON
        (b'\xef\xbb\xbf{"title": "console"}', 200),  # json.loads takes the BOM, pydantic not
        (b'{"title": "\\ud800 console"}', 200),  # a lone surrogate: the same
    ],
)
def test_a_body_the_plain_path_refuses_gets_fastapis_answer(client, solved, body, status):
    plain = client.post("/predict/", content=body, headers=JSON)
    same = client.post(FASTAPI_WAY, content=body, headers=JSON)
    # FastAPI refuses a body that is not JSON before it solves anything.
    assert solved == ([] if body.endswith(b'"ok"') else ["/predict/", FASTAPI_WAY])
    assert plain.status_code == same.status_code == status
    assert plain.json() == same.json() and same_headers(plain, same)


def same_headers(one, other) -> bool:
    return dict(one.headers) == dict(other.headers)


def test_other_content_types_and_queries_go_fastapis_way(client, solved):
    body = b'{"title": "console"}'
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/predict/", content=body, headers=with_charset).status_code == 200
    assert client.post("/predict/?explain=false", content=body, headers=JSON).status_code == 200
    assert solved == ["/predict/", "/predict/?explain=false"]


def test_the_plain_path_checks_top_k_against_the_limit_and_needs_a_model(
    small_model, client_without_model
):
    narrow = Settings(api={"log_predictions": False, "max_top_k": 2})
    app = create_app(narrow, loader=lambda settings: small_model, poll=False)
    with TestClient(app) as client:
        response = client.post("/predict/", json={"title": "console"})
        assert response.status_code == 422 and "top_k must be at most 2" in response.text
    missing = client_without_model.post("/predict/", json={"title": "console"})
    assert missing.status_code == 503 and "champion" in missing.json()["detail"]


@pytest.mark.parametrize("replace", [False, True])
def test_overridden_dependencies_are_honoured(client, small_model, solved, replace):
    other = LoadedModel(small_model.model, "99", "registry", {})
    if replace:  # a new dict, as tests often set it
        client.app.dependency_overrides = {get_current_model: lambda: other}
    else:
        client.app.dependency_overrides[get_current_model] = lambda: other
    response = client.post("/predict/", json={"title": "console"})
    assert response.status_code == 200 and response.json()["model_version"] == "99"
    assert solved == ["/predict/"]
    client.app.dependency_overrides = {}
    assert client.post("/predict/", json={"title": "console"}).json()["model_version"] == "7"
    assert solved == ["/predict/"]


async def explain_always() -> bool:
    return True


def test_an_endpoint_with_other_dependencies_is_refused_at_start():
    async def predict(
        body: dict, request: Request, loaded: ModelDep, top_k: TopK,
        explain: Annotated[bool, Depends(explain_always)],
    ):  # fmt: skip
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="the plain path passes"):
        PlainPredictionRoute("/predict/", predict, methods=["POST"])


def test_an_endpoint_the_plain_path_cannot_call_is_refused_at_start():
    async def predict(body: dict, request, loaded, top_k, explain, extra=None):
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="the plain path passes"):
        PlainPredictionRoute("/predict/", predict, methods=["POST"])

"""Hostile input gets a 4xx that says what is wrong, without echoing megabytes or leaking 500s."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer café",  # non-ASCII: compare_digest refuses str that is not ASCII
        "Bearer \u00ff\u00fe",
        "Bearer",  # no token at all
        "Bearer  ",
        "Basic YWRtaW46YWRtaW4=",
        "bearer changethis-and-more",
    ],
)
def test_a_malformed_or_non_ascii_token_is_401(client, authorization):
    response = client.post("/admin/reload", headers={"Authorization": authorization.encode()})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_right_token_still_works(client):
    response = client.post("/admin/reload", headers={"Authorization": "Bearer changethis"})
    assert response.status_code == 200


def echoed_length(error: dict) -> int:
    """Characters of the input an error echoes back (a string as is, anything else as JSON)."""
    echoed = error.get("input")
    return len(echoed) if isinstance(echoed, str) else len(json.dumps(echoed, ensure_ascii=False))


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x" * 5000},
        {"title": "ok", "description": "y" * 60_000},
        {"title": ["x" * 5000]},
        {"title": "ok", "colour": "z" * 5000},
        {"title": "\ufdfa" * 3000},
        {"items": [{"title": "ok"}, {"title": "x" * 9000}]},
    ],
)
def test_validation_errors_echo_at_most_200_characters(client, body):
    route = "/predict/batch" if "items" in body else "/predict/"
    response = client.post(route, json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail, response.text
    assert all(echoed_length(error) <= 200 for error in detail), [
        (error["loc"], echoed_length(error)) for error in detail
    ]

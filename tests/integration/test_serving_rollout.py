"""A real uvicorn server under load while the registry's champion alias moves to a new version."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import httpx
import pytest

from prodcat.training.registry import CHAMPION, get_client

from ..models import api_server, register_small_models, wait_until

pytestmark = pytest.mark.integration
MODEL_NAME = "prodcat-rollout-test"


@pytest.fixture(scope="module")
def two_versions(settings) -> tuple[str, str]:
    """Two registered versions of a small real model; the first is the champion."""
    old, new = register_small_models(settings, MODEL_NAME, 2)
    return old, new


@pytest.fixture
def server(settings, tmp_path):
    env = {
        **os.environ,
        "PRODCAT_MLFLOW__MODEL_NAME": MODEL_NAME,
        "PRODCAT_STATE_DIR": str(tmp_path),
        "PRODCAT_API__RELOAD_INTERVAL_SECONDS": "0.5",
    }
    bin_dir = Path(sys.executable).parent
    port = settings.api.port + 37
    # One worker: with several, each swaps on its own poll, so both versions interleave for up
    # to one reload interval and the order below cannot be asserted.
    with api_server(bin_dir, port, env, tmp_path / "api.log", workers=1) as url:
        yield url


def test_load_through_a_champion_swap_fails_no_request(two_versions, server, settings):
    old, new = two_versions
    get_client(settings).set_registered_model_alias(MODEL_NAME, CHAMPION, old)
    wait_until(lambda: httpx.get(f"{server}/ready").json()["model_version"] == old, 60, "old")
    # Per client thread: (answered before the alias moved, version). No clock is read: the
    # flag is read after the answer came, so "before" is certain.
    answers: dict[int, list[tuple[bool, str]]] = {n: [] for n in range(8)}
    failures: list[str] = []
    stop, moved = threading.Event(), threading.Event()

    def hammer(n: int) -> None:
        with httpx.Client(base_url=server, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict/", json={"title": f"console manette {n}"})
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answers[n].append((not moved.is_set(), response.json()["model_version"]))

    def count(version: str) -> int:
        return sum(v == version for thread in answers.values() for _, v in list(thread))

    threads = [threading.Thread(target=hammer, args=(n,)) for n in answers]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: count(old) > 100, timeout=120, what="answers from the old version")
        moved.set()
        get_client(settings).set_registered_model_alias(MODEL_NAME, CHAMPION, new)
        # Every client thread gets the new version, several times.
        wait_until(lambda: all(sum(v == new for _, v in list(a)) >= 5 for a in answers.values()),
                   timeout=120, what="every client on the new version")  # fmt: skip
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert failures == []
    assert {v for a in answers.values() for before, v in a if before} == {old}
    for thread_answers in answers.values():
        versions = [v for _, v in thread_answers]
        # Each client sees the old version, then the new one for good: never back and forth.
        first_new = versions.index(new)
        assert set(versions[:first_new]) == {old} and set(versions[first_new:]) == {new}
    ready = httpx.get(f"{server}/ready").json()
    assert ready["model_version"] == new and not ready["stale"]

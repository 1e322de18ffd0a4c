"""A real uvicorn server under load while the registry's champion alias moves to a new version."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from prodcat.registry import CHAMPION, get_client

from ..models import api_server, register_small_models

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
    answers: list[tuple[float, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer(n: int) -> None:
        with httpx.Client(base_url=server, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict/", json={"title": f"console manette {n}"})
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    answers.append((time.monotonic(), response.json()["model_version"]))

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    moved_at = time.monotonic()
    get_client(settings).set_registered_model_alias(MODEL_NAME, CHAMPION, new)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(v == new for _, v in answers[-50:]):
        time.sleep(0.2)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    versions = [v for _, v in answers]
    assert versions[0] == old and versions[-1] == new
    first_new = versions.index(new)
    assert set(versions[:first_new]) == {old}
    assert all(v == old for t, v in answers if t < moved_at)
    # Requests that arrived before the swap finish on the old model, so a few old answers
    # may land just after the first new one; never more than one per client thread.
    assert versions[first_new:].count(old) <= len(threads)
    assert set(versions[-20:]) == {new}
    assert len(versions) > 100, "the load was too light to show anything"
    ready = httpx.get(f"{server}/ready").json()
    assert ready["model_version"] == new and not ready["stale"]

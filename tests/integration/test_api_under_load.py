"""The API under hostile traffic, served by a real `prodcat serve` (two workers) with a model of
the `winner` configuration trained on real titles: the worst request the budget accepts
stays within a worker's memory budget, and a flood of them kills no worker."""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from prodcat.config import Settings

from ..models import api_server, register_small_models, train_winner_on_real_titles
from ..models import worst_case_items as make_worst_case

pytestmark = pytest.mark.integration
MODEL_NAME = "prodcat-under-load-test"
MEMORY_BUDGET = 150 * 10**6  # bytes a request may add to a worker (issue 12)
LIMIT = Settings().api.max_request_chars


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory):
    register_small_models(settings, MODEL_NAME, 1, train=train_winner_on_real_titles)
    state = tmp_path_factory.mktemp("under-load")
    env = {**os.environ, "PRODCAT_MLFLOW__MODEL_NAME": MODEL_NAME,
           "PRODCAT_STATE_DIR": str(state)}  # fmt: skip
    bin_dir, port = Path(sys.executable).parent, settings.api.port + 47
    with api_server(bin_dir, port, env, state / "api.log", workers=2) as url:
        listeners = {c.pid for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}  # fmt: skip
        supervisor = psutil.Process(next(iter(listeners))).parent()
        yield url, supervisor, state / "api.log"


@pytest.fixture(scope="module")
def worst_case() -> list[dict]:
    return make_worst_case(LIMIT)


def workers_of(supervisor: psutil.Process) -> list[psutil.Process]:
    return [c for c in supervisor.children() if "resource_tracker" not in " ".join(c.cmdline())]


def memory(process: psutil.Process) -> tuple[int, int]:
    """(resident, peak resident) bytes of a process."""
    status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
    fields = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in status)
              if k in ("VmRSS", "VmHWM")}  # fmt: skip
    return fields["VmRSS"], fields["VmHWM"]


def test_the_worst_accepted_request_stays_within_a_workers_memory_budget(server, worst_case):
    url, supervisor, _ = server
    workers = workers_of(supervisor)
    assert len(workers) == 2
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(4):  # each worker has served a prediction: the model is in use
            assert client.post("/predict/", json={"title": "console manette"}).status_code == 200
        before = {}
        for worker in workers:
            Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # peak := resident now
            before[worker.pid] = memory(worker)[0]
        response = client.post("/predict/batch", json={"items": worst_case})
        assert response.status_code == 200, response.text[:500]
        assert len(response.json()["predictions"]) == len(worst_case)
        growth = max(memory(w)[1] - before[w.pid] for w in workers)
        print(f"worst accepted request ({LIMIT} characters): +{growth / 2**20:.0f} MiB")
        assert growth <= MEMORY_BUDGET

        over = [*worst_case[:-1], {**worst_case[-1]}]
        over[-1]["description"] = over[-1].get("description", "") + "z"
        refused = client.post("/predict/batch", json={"items": over})
        assert refused.status_code == 413
        assert f"{LIMIT + 1} characters" in refused.text and str(LIMIT) in refused.text
        assert "PRODCAT_API__MAX_REQUEST_CHARS" in refused.text


def test_a_flood_of_worst_case_requests_kills_no_worker_and_small_ones_are_answered(
    server, worst_case
):
    url, supervisor, log_file = server
    workers = {w.pid for w in workers_of(supervisor)}
    before = {}
    for worker in workers_of(supervisor):
        Path(f"/proc/{worker.pid}/clear_refs").write_text("5")
        before[worker.pid] = memory(worker)[0]
    over = [*worst_case[:-1], {**worst_case[-1], "title": worst_case[-1]["title"] + "zz"}]
    bodies = [{"items": worst_case}, {"items": over}, {"items": worst_case}]
    flood: list[int] = []
    small: list[int] = []
    flooding = threading.Event()
    flooding.set()

    def send_worst_cases(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(4):
                response = client.post("/predict/batch", json=bodies[(n + i) % len(bodies)])
                flood.append(response.status_code)

    def send_small_ones() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while flooding.is_set() and len(small) < 5000:
                response = client.post("/predict/", json={"title": "piscine ronde bache"})
                small.append(response.status_code)

    senders = [threading.Thread(target=send_worst_cases, args=(n,)) for n in range(12)]
    streams = [threading.Thread(target=send_small_ones) for _ in range(2)]
    for thread in streams + senders:
        thread.start()
    for thread in senders:
        thread.join()
    flooding.clear()
    for thread in streams:
        thread.join()

    growth = [memory(w)[1] - before[w.pid] for w in workers_of(supervisor)]
    print(
        f"flood answers {Counter(flood)}; small answers {Counter(small)}; workers' peak "
        f"growth {', '.join(f'+{g / 2**20:.0f} MiB' for g in growth)}"
    )
    assert set(flood) <= {200, 413, 503} and 200 in flood and 413 in flood
    assert set(small) <= {200, 503}
    quarters = [small[i * len(small) // 4 : (i + 1) * len(small) // 4] for i in range(4)]
    assert all(q.count(200) >= 0.9 * len(q) > 0 for q in quarters), [Counter(q) for q in quarters]
    assert {w.pid for w in workers_of(supervisor)} == workers  # none died, none was replaced
    assert "starting another" not in log_file.read_text()
    assert httpx.get(f"{url}/ready").status_code == 200

"""`prodcat serve`: worker processes on their own sockets, restarted when they die, all stopped
on SIGTERM. No model is needed for this (the registry points at a closed port)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from prodcat.config import get_settings

from ..models import ROOT, wait_until

pytestmark = pytest.mark.integration


def health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def workers_of(supervisor: psutil.Process) -> list[psutil.Process]:
    workers = []
    for child in supervisor.children():
        try:  # spawn adds a resource tracker beside the workers; a killed one is a zombie
            if "resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:
            continue
    return workers


def listening_pids(port: int) -> set[int]:
    return {
        c.pid for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }  # fmt: skip


def test_workers_listen_on_their_own_sockets_restart_and_stop(settings, tmp_path):
    port = settings.api.port + 39
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PRODCAT_API__HOST": "127.0.0.1", "PRODCAT_API__PORT": str(port),
           "PRODCAT_API__WORKERS": "2", "PRODCAT_STATE_DIR": str(tmp_path / "state"),
           "PRODCAT_MLFLOW__PORT": str(port + 1),  # nothing there: served without a model
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}  # fmt: skip
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_12345.db").write_bytes(b"stale")
    log_file = tmp_path / "serve.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "prodcat"), "serve"],
                                   cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip
    try:
        supervisor = psutil.Process(process.pid)
        wait_until(lambda: health(url), 60, "the API")
        workers = wait_until(lambda: len(w := workers_of(supervisor)) == 2 and w, 60, "2 workers")
        # One listening socket per worker (SO_REUSEPORT), none shared from the supervisor.
        wait_until(lambda: listening_pids(port) == {w.pid for w in workers}, 60, "two sockets")
        assert not (tmp_path / "metrics" / "counter_12345.db").exists()  # emptied at start
        assert httpx.get(f"{url}/ready").status_code == 503  # up, and says why it is not ready

        workers[0].kill()
        replaced = wait_until(
            lambda: len(w := workers_of(supervisor)) == 2 and workers[0].pid not in
            {p.pid for p in w} and w, 60, "a new worker")  # fmt: skip
        assert workers[1].pid in {w.pid for w in replaced}
        wait_until(lambda: len(listening_pids(port)) == 2, 60, "the new worker's socket")
        assert all(health(url) for _ in range(20))

        second = subprocess.run(
            [str(Path(sys.executable).parent / "prodcat"), "serve"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0 and f"cannot serve on 127.0.0.1:{port}" in second.stderr

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not any(alive(w) for w in replaced)
        assert not health(url)
    finally:
        if process.poll() is None:
            process.kill()
    assert "starting another" in log_file.read_text()


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_workers_do_not_outlive_a_killed_supervisor(settings, tmp_path):
    port = settings.api.port + 41
    env = {**os.environ, "PRODCAT_API__HOST": "127.0.0.1", "PRODCAT_API__PORT": str(port),
           "PRODCAT_API__WORKERS": "2", "PRODCAT_STATE_DIR": str(tmp_path / "state"),
           "PRODCAT_MLFLOW__PORT": str(port + 1)}  # fmt: skip
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "prodcat"), "serve"],
                                   cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip
    supervisor = psutil.Process(process.pid)
    try:
        wait_until(lambda: health(f"http://127.0.0.1:{port}"), 60, "the API")
        workers = workers_of(supervisor)
        assert len(workers) == 2
    finally:
        process.kill()  # SIGKILL: no chance to stop its workers itself
        process.wait()
    wait_until(lambda: not any(alive(w) for w in workers), timeout=30, what="orphans to stop")
    assert listening_pids(port) == set()


def start_serve(env: dict[str, str], log_file: Path) -> subprocess.Popen:
    with open(log_file, "a") as log:
        return subprocess.Popen([str(Path(sys.executable).parent / "prodcat"), "serve"],
                                cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip


def serve_env(tmp_path: Path, port: int, workers: int) -> dict[str, str]:
    return {**os.environ, "PRODCAT_API__HOST": "127.0.0.1", "PRODCAT_API__PORT": str(port),
            "PRODCAT_API__WORKERS": str(workers), "PRODCAT_STATE_DIR": str(tmp_path / "state"),
            "PRODCAT_MLFLOW__PORT": str(port + 1)}  # fmt: skip


def wait_for_health_or_exit(process: subprocess.Popen, url: str, log_file: Path) -> None:
    wait_until(lambda: health(url) or process.poll() is not None, 90, "the API or its exit")
    assert process.poll() is None, f"the API exited:\n{log_file.read_text()[-3000:]}"


def test_a_single_worker_serves_with_a_multiprocess_metrics_directory(tmp_path):
    port = get_settings().api.port + 43  # needs no service: no stack
    url = f"http://127.0.0.1:{port}"
    env = {
        **serve_env(tmp_path, port, workers=1),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "not-yet" / "metrics"),
    }  # as the image sets it
    log_file = tmp_path / "serve.log"
    process = start_serve(env, log_file)
    try:
        wait_for_health_or_exit(process, url, log_file)
        text = httpx.get(f"{url}/metrics").text
        assert 'prodcat_api_requests_total{method="GET",route="/health",status="200"}' in text
        assert "prodcat_api_workers 1.0" in text
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_restarts_at_once_after_a_stop_while_clients_held_connections(tmp_path, workers):
    port = get_settings().api.port + 45
    url = f"http://127.0.0.1:{port}"
    env, log_file = serve_env(tmp_path, port, workers), tmp_path / "serve.log"
    process = start_serve(env, log_file)
    clients = [httpx.Client(base_url=url, timeout=5) for _ in range(8)]
    try:
        wait_for_health_or_exit(process, url, log_file)
        for client in clients:  # keep-alive connections, left open
            assert client.get("/health").status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        # The server closed those connections: its side of each waits in TIME_WAIT now.
        process = start_serve(env, log_file)
        wait_for_health_or_exit(process, url, log_file)
    finally:
        for client in clients:
            client.close()
        process.terminate()
        process.wait(timeout=60)


def test_a_worker_serves_the_model_without_loading_pyarrow(tmp_path):
    # pandas imports pyarrow when it is installed: 33 MiB per worker that serving never uses.
    import mlflow.sklearn

    pytest.importorskip("pyarrow")  # installed, as MLflow needs it: else nothing to show

    from ..models import train_small_model

    port = get_settings().api.port + 45  # needs no service: the local copy is served
    url = f"http://127.0.0.1:{port}"
    models = tmp_path / "state" / "serving" / "models"
    mlflow.sklearn.save_model(train_small_model(), str(models / "3-run"),
                              serialization_format="cloudpickle")  # fmt: skip
    (models / "current.json").write_text(json.dumps({"version": "3", "path": "3-run"}))
    log_file = tmp_path / "serve.log"
    process = start_serve(serve_env(tmp_path, port, workers=1), log_file)
    try:
        wait_for_health_or_exit(process, url, log_file)
        answer = httpx.post(f"{url}/predict/?explain=true", json={"title": "piscine pompe ronde"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["category_code"] == "2583" and answer.json()["explanation"]
        (worker,) = workers_of(psutil.Process(process.pid))
        libraries = {m.path for m in worker.memory_maps()}
        assert any("/sklearn/" in path for path in libraries)  # what is loaded shows here
        assert not any("/pyarrow/" in path for path in libraries)
    finally:
        process.terminate()
        process.wait(timeout=60)

"""The Celery executor, natively. `prodcat stack up` with PRODCAT_AIRFLOW__EXECUTOR=celery starts
Redis and two supervised `airflow celery worker` processes beside the usual services, on its own
state directory and ports. prepare_data, then ml_pipeline, are triggered through Airflow's REST
API: every task instance that ran is one that a worker's log shows it executing (each worker logs
every workload it takes from the queue, with the task instance's id), and the version the run
trained is in MLflow with the gate's decision, beside a champion.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prodcat.config import Settings
from prodcat.stack.airflow import worker_hostname
from tests.conftest import port_overrides

from ..e2e.platform import Airflow, make_state_with_slice, mlflow_version, settings_for

# Starts a whole stack and trains a model: far more than the global 900 s.
pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(2400)]
ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".state-celery-logs"
# Added to PRODCAT_TEST_PORT_OFFSET (port_overrides moves the test stack's ports): clear of the
# session's test stack and of the other e2e stacks (200, 300).
OFFSET = 500
WORKERS = ("airflow-worker-1", "airflow-worker-2")
SOURCE_ROWS = 6000  # 2,000 held out for evaluation, 4,000 to train on
ENV = {
    "PRODCAT_AIRFLOW__EXECUTOR": "celery",
    "PRODCAT_AIRFLOW__CELERY_WORKERS": str(len(WORKERS)),
    "PRODCAT_AIRFLOW__DAGS_PAUSED_AT_CREATION": "true",
    "PRODCAT_DATA__CATCH_UP": "true",  # one prepare_data run loads the whole slice
    "PRODCAT_TRAINING__PROFILE": "fast",
    "PRODCAT_TRAINING__MIN_ROWS": "3000",
}
# What the Celery provider logs as a worker takes a task instance from the queue.
WORKLOAD = re.compile(r"Executing workload in Celery: .*? ti=\w+\(id=UUID\('([0-9a-f-]+)'\)")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prodcat.cli", "stack", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def celery_stack():
    state, raw, _ = make_state_with_slice("prodcat-celery-", SOURCE_ROWS, Settings().data.raw_dir)
    env = {**os.environ, **port_overrides(OFFSET), **ENV, "PRODCAT_STATE_DIR": str(state),
           "PRODCAT_DATA__RAW_DIR": str(raw)}  # fmt: skip
    up = cli(env, "up")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield {"env": env, "settings": settings_for(env), "logs": state / "logs"}
    finally:
        cli(env, "down")
        shutil.rmtree(LOGS, ignore_errors=True)  # kept for a look after a failure
        shutil.copytree(state / "logs", LOGS, dirs_exist_ok=True)
        shutil.rmtree(state, ignore_errors=True)


def executed_by(logs: Path) -> dict[str, str]:
    """Task instance id -> the worker (service name) whose log shows it executing it."""
    found = {}
    for worker in WORKERS:
        for line in (logs / f"{worker}.log").read_text(errors="replace").splitlines():
            if match := WORKLOAD.search(line):
                found[match.group(1)] = worker
    return found


def test_status_shows_redis_and_each_worker_healthy(celery_stack):
    status = cli(celery_stack["env"], "status")
    assert status.returncode == 0, status.stdout
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    names = list(rows)
    assert names.index("redis") < names.index("airflow-scheduler")
    assert names.index("airflow-triggerer") < names.index(WORKERS[0]) < names.index(WORKERS[1])
    for name in ("redis", *WORKERS):
        assert rows[name][1] == "healthy", status.stdout
    assert rows[WORKERS[1]][3] == f"celery@{worker_hostname(2)}"


def test_redis_serves_only_clients_that_sign_in(celery_stack):
    cfg = celery_stack["settings"].redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=cfg.host, port=cfg.port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=cfg.host, port=cfg.port, password="not-the-password").ping()
    client = redis.Redis(host=cfg.host, port=cfg.port, password=cfg.password.get_secret_value())
    assert client.ping()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    client.close()


def test_prepare_data_then_ml_pipeline_run_on_the_celery_workers(celery_stack):
    settings = celery_stack["settings"]
    airflow = Airflow(settings)
    runs = {
        "prepare_data": airflow.run_unpaused("prepare_data"),
        # "manual" trains even when a run that unpausing started made a champion first.
        "ml_pipeline": airflow.run_unpaused("ml_pipeline", {"reason": "manual"}, timeout=1500),
    }
    not_green = [(d, r["dag_run_id"], r["state"]) for d in runs for r in airflow.runs(d)
                 if r["state"] != "success"]  # fmt: skip
    assert not not_green, not_green

    executed = executed_by(celery_stack["logs"])
    ran = {}
    for dag_id, run_id in runs.items():
        instances = airflow.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        for ti in instances["task_instances"]:
            if ti["state"] == "success":
                ran[(dag_id, ti["task_id"])] = ti
                assert ti["id"] in executed, f"{dag_id}.{ti['task_id']} is in no worker's log"
                assert ti["queue"] == "default"  # the queue the workers consume
    assert ("prepare_data", "ingest_batch") in ran
    assert {"train", "evaluate", "gate", "promote"} <= {t for d, t in ran if d == "ml_pipeline"}

    trained = airflow.get(
        f"/dags/ml_pipeline/dagRuns/{runs['ml_pipeline']}/taskInstances/train/xcomEntries/"
        "return_value"
    )["value"]
    assert mlflow_version(settings, version=trained["version"])["tags"]["gate.decision"]
    assert mlflow_version(settings, "champion")["version"]

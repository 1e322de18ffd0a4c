"""The stack's behaviour that needs no running service."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A hang fails with TimeoutExpired.
    return subprocess.run(
        [sys.executable, "-m", "prodcat.cli", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_up_names_a_missing_component_and_how_to_install_it(tmp_path):
    result = run_cli(
        "stack", "up",
        PRODCAT_STATE_DIR=str(tmp_path), PRODCAT_POSTGRES__BIN_DIR="/nonexistent/pg/bin",
    )  # fmt: skip
    assert result.returncode == 2
    assert "postgres: /nonexistent/pg/bin/postgres not found" in result.stderr
    assert "apt-get install postgresql-15" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started


def test_status_of_a_stack_never_started_shows_every_service_stopped(tmp_path):
    result = run_cli("stack", "status", PRODCAT_STATE_DIR=str(tmp_path))
    assert result.returncode == 3
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "PID", "URL"]
    names = [line.split()[0] for line in lines[1:]]
    assert names[:3] == ["postgres", "s3", "mlflow"]
    assert {"airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "api"} <= set(names)
    assert all(line.split()[1] == "stopped" for line in lines[1:])


def test_status_with_the_celery_executor_lists_redis_and_each_worker(tmp_path):
    result = run_cli(
        "stack", "status", PRODCAT_STATE_DIR=str(tmp_path),
        PRODCAT_AIRFLOW__EXECUTOR="celery", PRODCAT_AIRFLOW__CELERY_WORKERS="2",
    )  # fmt: skip
    assert result.returncode == 3
    names = [line.split()[0] for line in result.stdout.strip().splitlines()[1:]]
    assert {"redis", "airflow-worker-1", "airflow-worker-2"} <= set(names)
    assert "airflow-worker-3" not in names


def test_unknown_service_is_refused(tmp_path):
    result = run_cli("stack", "up", "nosuch", PRODCAT_STATE_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "unknown service(s): nosuch" in result.stderr

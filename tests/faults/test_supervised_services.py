"""Services that die come back by themselves: PostgreSQL and Airflow's processes are really
killed on the test stack, then, with no command typed, the real scheduler runs a DAG that the
test triggers through Airflow's REST API, and nothing written before the kill is lost."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from sqlalchemy import text

from prodcat.db import get_engine

from ..e2e.platform import Airflow, wait_for
from .breaking import drop_pooled_connections, pid_of, restarted, wait_all_healthy

pytestmark = pytest.mark.integration
AIRFLOW_PROCESSES = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def snapshot(settings) -> tuple[int, int]:
    with get_engine(settings).connect() as conn:
        products = conn.execute(text("select count(*) from products")).scalar_one()
        batches = conn.execute(
            text("select count(*) from ingestion_batches where status = 'succeeded'")
        ).scalar_one()
    return products, batches


def run_prepare_data(settings) -> None:
    """Unpause prepare_data, trigger it and wait for every run it has to finish; pause again."""
    Airflow(settings).run_unpaused("prepare_data")


@pytest.mark.timeout(1800)
def test_postgres_killed_then_everything_recovers_and_runs_a_dag(stack, settings):
    wait_all_healthy(stack)
    before = snapshot(settings)
    postmaster = pid_of(stack, "postgres")
    airflow_pids = {name: pid_of(stack, name) for name in AIRFLOW_PROCESSES}

    os.kill(postmaster, signal.SIGKILL)
    drop_pooled_connections()
    wait_for(lambda: restarted(stack, "postgres", postmaster), 300, "PostgreSQL started again")
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == "zombie"
    wait_all_healthy(stack)

    assert snapshot(settings) == before  # the kill lost no committed row
    run_prepare_data(settings)
    products, batches = snapshot(settings)
    assert products >= before[0] and batches >= before[1]
    # Whether Airflow's processes died with the database or rode it out, they are up now.
    for name, old in airflow_pids.items():
        assert stack.status([name])[0].state == "healthy", (name, old)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", ["airflow-scheduler", "api"])
def test_a_killed_service_is_back_with_a_new_process(stack, settings, name):
    wait_all_healthy(stack)
    old = pid_of(stack, name)
    for process in [*psutil.Process(old).children(recursive=True), psutil.Process(old)]:
        process.kill()
    wait_for(lambda: restarted(stack, name, old), 600, f"{name} started again")
    if name == "airflow-scheduler":
        run_prepare_data(settings)  # the new scheduler schedules and runs tasks

"""Helpers for breaking the test stack's services and waiting for them to come back."""

from __future__ import annotations

import sys

from prodcat.db.engine import dispose_engines

from ..e2e.platform import wait_for


def pid_of(stack, name: str) -> int:
    (status,) = stack.status([name])
    assert status.pid, f"{name} is not running: {status.state}"
    return status.pid


def restarted(stack, name: str, old_pid: int) -> bool:
    (status,) = stack.status([name])
    return status.pid not in (None, old_pid) and status.healthy


def wait_all_healthy(stack, timeout: float = 600) -> None:
    def healthy() -> bool:
        return all(s.state == "healthy" for s in stack.status())

    wait_for(healthy, timeout, "every service healthy again", every=3)


def drop_pooled_connections() -> None:
    """This process's pooled connections died with the server: prodcat's, and those of the
    Airflow ORM that in-process DAG tests (dag.test) use, including its thread's open session."""
    dispose_engines()
    airflow_settings = sys.modules.get("airflow.settings")
    if airflow_settings is not None and airflow_settings.Session is not None:
        # Invalidate, not close: closing rolls back the thread's open transaction over the
        # dead connection, and that raises.
        airflow_settings.Session().invalidate()
        airflow_settings.Session.remove()
        airflow_settings.engine.dispose()

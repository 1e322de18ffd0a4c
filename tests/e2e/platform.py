"""What a user's scripts use to drive a running platform: Airflow's REST API v2, the prediction
API, MLflow's REST API, and a StatsD listener that records every packet the platform sends."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

from prodcat.config import Settings


def settings_for(env: dict[str, str]) -> Settings:
    """The settings a stack started with env (its PRODCAT_* variables) reads."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("PRODCAT_")})
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def mlflow_version(
    settings: Settings, alias: str | None = None, version: str | None = None
) -> dict:
    """The registered model's version behind alias (or that version), with its tags as a dict
    (MLflow REST)."""
    path, which = (("registered-models/alias", {"alias": alias}) if alias
                   else ("model-versions/get", {"version": version}))  # fmt: skip
    response = httpx.get(
        f"{settings.mlflow.tracking_uri}/api/2.0/mlflow/{path}",
        params={"name": settings.mlflow.model_name, **which}, timeout=30,
        auth=(settings.mlflow.admin_user, settings.mlflow.admin_password.get_secret_value()),
    )  # fmt: skip
    response.raise_for_status()
    found = response.json()["model_version"]
    return {**found, "tags": {t["key"]: t["value"] for t in found.get("tags", [])}}


def make_state_with_slice(prefix: str, rows: int, raw_dir: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A fresh state directory holding raw/ with the first rows of the development file (and
    its categories): (state, raw, the slice)."""
    # Not pytest's tmp_path: PostgreSQL runs as 'postgres' under root and must traverse it.
    state = Path(tempfile.mkdtemp(prefix=prefix))
    state.chmod(0o755)
    raw = state / "raw"
    raw.mkdir()
    shutil.copy(raw_dir / "categories.csv", raw)
    source = pd.read_csv(raw_dir / "designations.csv", dtype=str, keep_default_na=False)
    source.iloc[:rows].to_csv(raw / "designations.csv", index=False)
    return state, raw, source


class Airflow:
    """Airflow's REST API v2, logged in as the admin user."""

    def __init__(self, settings: Settings):
        self.url = f"{settings.airflow.url}/api/v2"
        login = {"username": settings.airflow.admin_user,
                 "password": settings.airflow.admin_password.get_secret_value()}  # fmt: skip
        token = httpx.post(f"{settings.airflow.url}/auth/token", json=login, timeout=30)
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def get(self, path: str, **params) -> dict:
        response = httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def patch(self, path: str, body: dict) -> dict:
        response = httpx.patch(f"{self.url}{path}", json=body, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        response = httpx.delete(f"{self.url}{path}", headers=self.headers, timeout=30)
        response.raise_for_status()

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """A manual run (logical date null, as the UI makes them); returns its run id."""
        body = {"logical_date": None, "conf": conf or {}}
        response = httpx.post(
            f"{self.url}/dags/{dag_id}/dagRuns", headers=self.headers, json=body, timeout=30
        )
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def runs(self, dag_id: str = "~") -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="-run_after")["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        """The run once it finished; AssertionError if it failed or did not finish in time."""
        run = wait_for(lambda: finished(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")), timeout,
                       f"{dag_id} run {run_id}")  # fmt: skip
        assert run["state"] == "success", f"{dag_id} run {run_id} ended {run['state']}"
        return run

    def run_unpaused(self, dag_id: str, conf: dict | None = None, timeout: float = 900) -> str:
        """Unpause dag_id, trigger it and wait for every run it has to finish (AssertionError if
        the triggered one fails), then pause it again; returns the triggered run's id."""

        def active() -> list[dict]:
            return [r for r in self.runs(dag_id) if r["state"] in ("queued", "running")]

        self.patch(f"/dags/{dag_id}", {"is_paused": False})
        try:
            run_id = self.trigger(dag_id, conf)
            self.wait_for_run(dag_id, run_id, timeout=timeout)
            # Unpausing may also have started the latest scheduled run: it finishes while the
            # DAG is unpaused, since the scheduler leaves a paused DAG's runs where they are.
            wait_for(lambda: not active(), timeout, f"{dag_id} runs to finish")
        finally:
            self.patch(f"/dags/{dag_id}", {"is_paused": True})
            for run in active():  # created just before the pause: it would never move
                self.delete(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
        return run_id

    def dag_tasks(self) -> dict[str, list[str]]:
        """Every DAG's task ids."""
        dags = [d["dag_id"] for d in self.get("/dags", limit=100)["dags"]]
        return {d: [t["task_id"] for t in self.get(f"/dags/{d}/tasks")["tasks"]] for d in dags}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in instances["task_instances"]}


def finished(run: dict) -> dict | None:
    return run if run["state"] in ("success", "failed") else None


def wait_for(condition, timeout: float, what: str, every: float = 2.0):
    """condition()'s first truthy value; AssertionError after timeout (errors count as no)."""
    deadline, last_error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (httpx.HTTPError, KeyError) as error:
            last_error = error
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last_error})")


class StatsdRecorder:
    """Listens where the platform sends StatsD and keeps every metric name it receives."""

    def __init__(self, host: str, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.5)
        self.kinds: dict[str, str] = {}  # metric name -> StatsD type (c, g, ms)
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            for line in data.decode("utf-8", "replace").splitlines():
                name, _, rest = line.partition(":")  # name:value|type[|@rate][|#tags]
                if rest:
                    self.kinds[name] = rest.split("|")[1] if "|" in rest else "?"
                    self.packets += 1

    @property
    def names(self) -> set[str]:
        return set(self.kinds)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

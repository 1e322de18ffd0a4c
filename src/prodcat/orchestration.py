"""Airflow's REST API v2, as the prediction API uses it: start a DAG run and follow it."""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from prodcat.config import Settings

TIMEOUT = httpx.Timeout(10.0)
# Airflow 3's default [scheduler] allowed_run_id_pattern.
ALLOWED_RUN_ID = re.compile(r"[A-Za-z0-9_.~:+-]+")


class AirflowUnavailable(Exception):
    """Airflow could not be reached, or refused prodcat's credentials."""


class RunNotFound(LookupError):
    """Airflow has no such DAG run."""


async def trigger_dag(settings: Settings, dag_id: str, conf: dict) -> dict:
    """A manual run of dag_id with conf (logical date null, as the UI makes them)."""
    body = {"logical_date": None, "conf": conf}
    return await call_airflow(settings, "POST", f"/dags/{dag_id}/dagRuns", json=body)


async def get_dag_run(settings: Settings, dag_id: str, run_id: str) -> dict:
    """One DAG run as Airflow describes it; RunNotFound when it has none with that id.

    Airflow's own run ids match ALLOWED_RUN_ID: anything else cannot name a run."""
    if not ALLOWED_RUN_ID.fullmatch(run_id) or not run_id.strip("."):
        raise RunNotFound(f"{run_id!r} is not an Airflow run id")
    return await call_airflow(settings, "GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")


async def call_airflow(settings: Settings, method: str, path: str, **kwargs) -> dict:
    """One REST v2 call, signed in as the configured Airflow user."""
    base = settings.airflow.url
    try:
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
            headers = {"Authorization": f"Bearer {await sign_in(client, settings)}"}
            response = await client.request(method, f"/api/v2{path}", headers=headers, **kwargs)
    except httpx.HTTPError as error:
        raise AirflowUnavailable(f"Airflow at {base} cannot be reached ({error!r})") from error
    if response.status_code == 404:
        raise RunNotFound(response.json().get("detail", "not found"))
    if response.status_code >= 400:
        raise AirflowUnavailable(
            f"Airflow at {base} answered {response.status_code} to {method} {path}: "
            f"{response.text[:200]}"
        )
    return response.json()


async def sign_in(client: httpx.AsyncClient, settings: Settings) -> str:
    """A JWT from POST /auth/token (Airflow 3 names it access_token)."""
    login = {"username": settings.airflow.admin_user,
             "password": settings.airflow.admin_password.get_secret_value()}  # fmt: skip
    response = await client.post("/auth/token", json=login)
    if response.status_code in (401, 403):
        raise AirflowUnavailable(
            f"Airflow at {settings.airflow.url} refused prodcat's credentials "
            "(PRODCAT_AIRFLOW__ADMIN_USER and PRODCAT_AIRFLOW__ADMIN_PASSWORD)"
        )
    if response.status_code >= 400:
        raise AirflowUnavailable(f"Airflow's sign-in answered {response.status_code}")
    return response.json()["access_token"]

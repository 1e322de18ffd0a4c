"""Airflow 3 for the native stack: api-server, scheduler, dag-processor and triggerer, and with
the Celery executor its workers."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from pathlib import Path

import httpx

from prodcat.config import Settings
from prodcat.stack.service import HTTP_TIMEOUT, Service, StackPaths, http_ok, venv_bin

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install -r requirements.txt (make up does it)"


def airflow_env(settings: Settings, paths: StackPaths, base: dict[str, str]) -> dict[str, str]:
    """Airflow configuration as AIRFLOW__* variables, all derived from prodcat settings."""
    cfg, home = settings.airflow, paths.state / "airflow"
    dags = cfg.dags_folder if cfg.dags_folder.is_absolute() else paths.root / cfg.dags_folder
    env = dict(base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(cfg.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(cfg.dags_paused_at_creation),
            "AIRFLOW__CORE__FERNET_KEY": cfg.fernet_key.get_secret_value(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.postgres.url("airflow"),
            "AIRFLOW__API__HOST": cfg.host,
            "AIRFLOW__API__PORT": str(cfg.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": cfg.api_secret_key.get_secret_value(),
            "AIRFLOW__API__BASE_URL": cfg.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": cfg.jwt_secret.get_secret_value(),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__METRICS__STATSD_ON": str(settings.statsd.enabled),
            "AIRFLOW__METRICS__STATSD_HOST": settings.statsd.host,
            "AIRFLOW__METRICS__STATSD_PORT": str(settings.statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }
    )
    if cfg.executor == "celery":
        env.update(celery_env(settings))
    return env


def celery_env(settings: Settings) -> dict[str, str]:
    """The Celery executor's settings: Redis as broker, the airflow database for results."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": settings.redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{settings.postgres.url('airflow')}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.airflow.celery_worker_concurrency),
        # Redis hands an unacknowledged task to another worker after this long: it must exceed
        # the longest execution_timeout (ml_pipeline's 2 h). Set, it also silences a warning.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    }


def build_services(
    settings: Settings, paths: StackPaths, base_env: dict[str, str]
) -> list[Service]:
    cfg = settings.airflow
    env = airflow_env(settings, paths, base_env)
    airflow = venv_bin("airflow")
    requires = [(airflow, INSTALL_HINT)]

    def component(name: str, args: list[str], key: str) -> Service:
        return Service(
            name=f"airflow-{name}",
            url=f"{cfg.url} ({name})",
            command=[airflow, *args],
            health=lambda: component_healthy(settings, key),
            requires=requires,
            env=env,
            start_timeout=120,
        )

    api_server = Service(
        name="airflow-api-server",
        url=cfg.url,
        command=[airflow, "api-server", "--host", cfg.host, "--port", str(cfg.port)],
        health=lambda: http_ok(f"{cfg.url}/api/v2/monitor/health"),
        requires=requires,
        env=env,
        ports=[cfg.port],
        start_timeout=180,
        prepare=lambda: prepare_airflow(settings, paths, env),
    )
    return [
        api_server,
        component("scheduler", ["scheduler", "--skip-serve-logs"], "scheduler"),
        component("dag-processor", ["dag-processor"], "dag_processor"),
        component("triggerer", ["triggerer", "--skip-serve-logs"], "triggerer"),
    ]


def build_workers(settings: Settings, paths: StackPaths, base_env: dict[str, str]) -> list[Service]:
    """`celery_workers` Celery workers, each with its own node name, reading the shared logs
    folder (so none serves logs over HTTP)."""
    airflow, env = venv_bin("airflow"), airflow_env(settings, paths, base_env)
    workers = []
    for index in range(1, settings.airflow.celery_workers + 1):
        hostname = worker_hostname(index)
        workers.append(
            Service(
                name=f"airflow-worker-{index}",
                url=f"celery@{hostname} ({settings.redis.host}:{settings.redis.port})",
                command=[airflow, "celery", "worker", "-H", hostname, "--skip-serve-logs"],
                health=lambda node=f"celery@{hostname}": worker_answers(settings, node),
                requires=[(airflow, INSTALL_HINT)],
                env=env,
                start_timeout=180,
            )
        )
    return workers


def worker_hostname(index: int) -> str:
    """Worker `index`'s Celery hostname (its node name is celery@ this)."""
    return f"{socket.gethostname()}-worker-{index}"


def worker_answers(settings: Settings, node: str) -> bool:
    """True when the Celery worker `node` answers a ping through the broker, as the official
    chart's `celery inspect ping -d celery@$HOSTNAME` probe asks, without starting Airflow."""
    from celery import Celery
    from kombu.exceptions import KombuError

    app = Celery(set_as_current=False, broker=settings.redis.url)
    app.conf.broker_connection_timeout = HTTP_TIMEOUT
    try:
        replies = app.control.ping(destination=[node], timeout=HTTP_TIMEOUT)
    except (OSError, KombuError):
        return False
    finally:
        app.close()
    return any(node in reply for reply in replies)


def component_healthy(settings: Settings, key: str) -> bool:
    """A component's status as the api-server's monitor endpoint reports it."""
    try:
        response = httpx.get(f"{settings.airflow.url}/api/v2/monitor/health", timeout=HTTP_TIMEOUT)
        return (response.json().get(key) or {}).get("status") == "healthy"
    except (httpx.HTTPError, ValueError):
        return False


def prepare_airflow(settings: Settings, paths: StackPaths, env: dict[str, str]) -> None:
    """Write the admin login and migrate the metadata database."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    login = {settings.airflow.admin_user: settings.airflow.admin_password.get_secret_value()}
    passwords.write_text(json.dumps(login))
    passwords.chmod(0o600)
    log.info("migrating the Airflow metadata database (first run takes about a minute)")
    with open(paths.logfile("airflow-db-migrate"), "ab") as out:
        result = subprocess.run(
            [venv_bin("airflow"), "db", "migrate"],
            env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed; see {paths.logfile('airflow-db-migrate')}")


def get_api_token(settings: Settings) -> str:
    """Log in to the Airflow API as the admin user and return a bearer token."""
    response = httpx.post(
        f"{settings.airflow.url}/auth/token",
        json={
            "username": settings.airflow.admin_user,
            "password": settings.airflow.admin_password.get_secret_value(),
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]

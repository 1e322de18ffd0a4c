"""The services of the native stack: how each is prepared, started and health-checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from prodcat.config import Settings

HTTP_TIMEOUT = 2.0


@dataclass
class Service:
    name: str
    url: str
    command: list[str]
    health: Callable[[], bool]
    requires: list[tuple[str, str]] = field(default_factory=list)  # (executable, install hint)
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    start_timeout: float = 120
    ports: list[int] = field(default_factory=list)
    prepare: Callable[[], None] | None = None
    after_start: Callable[[], None] | None = None


@dataclass(frozen=True)
class StackPaths:
    root: Path
    state: Path

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def pidfile(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def logfile(self, service: str) -> Path:
        return self.logs / f"{service}.log"


def resolve_paths(settings: Settings, root: Path | None = None) -> StackPaths:
    """Absolute project root and state directory."""
    root = (root or Path.cwd()).resolve()
    state = settings.state_dir if settings.state_dir.is_absolute() else root / settings.state_dir
    return StackPaths(root=root, state=state.resolve())


def venv_bin(name: str) -> str:
    """An executable installed beside the running interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def http_ok(url: str, predicate: Callable[[httpx.Response], bool] | None = None) -> bool:
    """True when GET url answers 2xx (and predicate holds)."""
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT)
    except httpx.HTTPError:
        return False
    return response.is_success and (predicate is None or predicate(response))


def service_env(settings: Settings, paths: StackPaths) -> dict[str, str]:
    """The environment every service process gets: ours, with absolute paths pinned."""
    env = dict(os.environ)
    env["PRODCAT_STATE_DIR"] = str(paths.state)
    env["PYTHONUNBUFFERED"] = "1"
    env["AWS_ACCESS_KEY_ID"] = settings.s3.access_key
    env["AWS_SECRET_ACCESS_KEY"] = settings.s3.secret_key.get_secret_value()
    env["AWS_DEFAULT_REGION"] = settings.s3.region
    env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3.endpoint_url
    env["MLFLOW_TRACKING_URI"] = settings.mlflow.tracking_uri
    return env


def build_services(settings: Settings, paths: StackPaths) -> list[Service]:
    """All services in start order."""
    from prodcat.stack import airflow, postgres, s3

    env = service_env(settings, paths)
    return [
        postgres.build_service(settings, paths),
        s3.build_service(settings, paths, env),
        build_mlflow(settings, paths, env),
        *airflow.build_services(settings, paths, env),
        build_prometheus(settings, paths, env),
        build_api(settings, paths, env),
    ]


def build_mlflow(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.mlflow
    command = [
        venv_bin("mlflow"), "server",
        "--backend-store-uri", settings.postgres.url("mlflow"),
        "--artifacts-destination", f"s3://{settings.s3.mlflow_bucket}/",
        "--serve-artifacts",
        "--host", cfg.host, "--port", str(cfg.port),
        "--workers", str(cfg.workers),
    ]  # fmt: skip
    return Service(
        name="mlflow",
        url=cfg.tracking_uri,
        command=command,
        health=lambda: http_ok(f"{cfg.tracking_uri}/health"),
        requires=[(command[0], "pip install -r requirements.txt (make up does it)")],
        # The GenAI job runner costs ~1 GiB of worker processes we never use.
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ports=[cfg.port],
        start_timeout=180,
    )


def build_prometheus(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.prometheus
    config_file = paths.state / "prometheus" / "prometheus.yml"

    def prepare() -> None:
        write_prometheus_config(settings, config_file, paths.root / "monitoring")
        check = subprocess.run(
            ["promtool", "check", "config", str(config_file)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"invalid Prometheus config:\n{check.stdout}{check.stderr}")

    command = [
        "prometheus",
        f"--config.file={config_file}",
        f"--storage.tsdb.path={paths.state / 'prometheus' / 'data'}",
        f"--web.listen-address={cfg.host}:{cfg.port}",
        "--storage.tsdb.retention.time=15d",
    ]
    return Service(
        name="prometheus",
        url=cfg.url,
        command=command,
        health=lambda: http_ok(f"{cfg.url}/-/ready"),
        requires=[
            ("prometheus", "apt-get install prometheus"),
            ("promtool", "apt-get install prometheus"),
        ],
        env=env,
        ports=[cfg.port],
        prepare=prepare,
    )


def write_prometheus_config(settings: Settings, path: Path, monitoring_dir: Path) -> None:
    """Native Prometheus config: scrape itself and the prediction API, with our alert rules."""
    rules = monitoring_dir / "prometheus" / "alerts.yml"
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(rules)] if rules.exists() else [],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [
                    {"targets": [f"{settings.prometheus.host}:{settings.prometheus.port}"]}
                ],
            },
            {
                "job_name": "prodcat-api",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{settings.api.host}:{settings.api.port}"]}],
            },
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML


def build_api(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.api
    command = [venv_bin("prodcat"), "serve"]
    return Service(
        name="api",
        url=cfg.url,
        command=command,
        health=lambda: http_ok(f"{cfg.url}/health"),
        requires=[(command[0], "pip install -r requirements.txt (make up does it)")],
        env=env,
        ports=[cfg.port],
        # Two workers import the ML stack while Airflow's first tasks start: slow on 2 busy cores.
        start_timeout=180,
    )

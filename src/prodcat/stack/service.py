"""What a native service is, and the helpers every service module shares."""

from __future__ import annotations

import os
import shutil
import signal
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
    stop_timeout: float = 30
    start_seconds: int = 5  # up this long after a (re)start counts as started
    start_retries: int = 100  # supervisord's tries, waiting 1 s longer each time, then "failed"


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

    @property
    def supervisor_config(self) -> Path:
        return self.run / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.run / "supervisor.sock"

    def envfile(self, service: str) -> Path:
        return self.run / f"{service}.env.json"

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
    env["MLFLOW_TRACKING_USERNAME"] = settings.mlflow.admin_user
    env["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow.admin_password.get_secret_value()
    return env

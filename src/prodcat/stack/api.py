"""The prediction API for the native stack: `prodcat serve`."""

from __future__ import annotations

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths, http_ok, venv_bin


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
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

"""MLflow's tracking server and model registry for the native stack."""

from __future__ import annotations

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths, http_ok, venv_bin


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.mlflow
    command = [
        venv_bin("mlflow"), "server",
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
        env={
            **env,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # Through the environment: a command line would show the password to `ps`.
            "MLFLOW_BACKEND_STORE_URI": settings.postgres.url("mlflow"),
        },
        ports=[cfg.port],
        start_timeout=180,
    )

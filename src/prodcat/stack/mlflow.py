"""MLflow's tracking server and model registry for the native stack, behind basic auth."""

from __future__ import annotations

from pathlib import Path

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths, http_ok, venv_bin


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.mlflow
    auth_config = paths.state / "mlflow" / "basic_auth.ini"
    command = [
        venv_bin("mlflow"), "server",
        "--app-name", "basic-auth",
        "--artifacts-destination", f"s3://{settings.s3.mlflow_bucket}/",
        "--serve-artifacts",
        "--host", cfg.host, "--port", str(cfg.port),
        "--workers", str(cfg.workers),
    ]  # fmt: skip
    return Service(
        name="mlflow",
        url=cfg.tracking_uri,
        command=command,
        health=lambda: http_ok(f"{cfg.tracking_uri}/health"),  # the one route without auth
        requires=[(command[0], "pip install -r requirements.txt (make up does it)")],
        # The GenAI job runner costs ~1 GiB of worker processes we never use.
        env={
            **env,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # Through the environment: a command line would show the password to `ps`.
            "MLFLOW_BACKEND_STORE_URI": settings.postgres.url("mlflow"),
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_USERNAME": cfg.admin_user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": cfg.admin_password.get_secret_value(),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": cfg.flask_secret_key.get_secret_value(),
        },
        ports=[cfg.port],
        start_timeout=180,
        prepare=lambda: write_auth_config(auth_config),
        after_start=lambda: add_reader_user(settings),
    )


def write_auth_config(path: Path) -> None:
    """The basic-auth app's settings (no secret: those come from the environment). Users are
    kept in SQLite beside it; signing in is checked once a minute per user, not per request
    (a PBKDF2 hash each time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{path.with_name('basic_auth.db')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        "auth_cache_ttl_seconds = 60\n"
    )


def add_reader_user(settings: Settings) -> None:
    """The API's read-only user, once MLflow is up (MLflow's client is imported only now:
    `stack status` stays quick)."""
    from prodcat.training.registry import ensure_reader_user

    ensure_reader_user(settings)

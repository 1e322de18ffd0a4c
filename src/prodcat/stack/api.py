"""The prediction API for the native stack: `prodcat serve`."""

from __future__ import annotations

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths, http_ok, venv_bin


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.api
    command = [venv_bin("prodcat"), "serve"]
    env = {**env, **build_reader_env(settings)}
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


def build_reader_env(settings: Settings) -> dict[str, str]:
    """The API only reads: its S3 keys are the read-only identity's, and it signs in to
    MLflow as the read-only user (MLflow serves the model files with its own keys)."""
    reader = settings.s3.as_reader()
    access, secret = reader.access_key, reader.secret_key.get_secret_value()
    return {
        "AWS_ACCESS_KEY_ID": access,
        "AWS_SECRET_ACCESS_KEY": secret,
        "PRODCAT_S3__ACCESS_KEY": access,
        "PRODCAT_S3__SECRET_KEY": secret,
        "PRODCAT_MLFLOW__SIGN_IN_AS": "reader",
        "MLFLOW_TRACKING_USERNAME": settings.mlflow.reader_user,
        "MLFLOW_TRACKING_PASSWORD": settings.mlflow.reader_password.get_secret_value(),
    }

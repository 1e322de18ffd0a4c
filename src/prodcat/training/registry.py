"""The MLflow model registry: versions, the quality gate, and the champion / previous aliases.

MLflow stages are deprecated; prodcat uses aliases only. Serving loads models:/<name>@champion.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

import mlflow
import requests
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from prodcat.config import Settings, get_settings
from prodcat.metrics import set_gauge

log = logging.getLogger(__name__)
CHAMPION, PREVIOUS = "champion", "previous"
# A version scored in shadow on live traffic (ml_pipeline sets it when one clears the floor).
CHALLENGER = "challenger"
# Tags every trained version carries: what it was trained on.
SNAPSHOT_BATCH_TAG = "snapshot.max_batch_id"
SNAPSHOT_ROWS_TAG = "snapshot.row_count"
SNAPSHOT_IDS_TAG = "snapshot.ids_sha256"
SNAPSHOT_FEEDBACK_TAG = "snapshot.max_feedback_id"


def use_mlflow(settings: Settings | None = None) -> str:
    """Point this process's MLflow client at our server, signed in; returns the tracking URI.

    MLflow reads the basic-auth credentials from the environment on every request, so they
    are put there (never in the URI, which MLflow prints in its links)."""
    cfg = (settings or get_settings()).mlflow
    reader = cfg.sign_in_as == "reader"
    password = cfg.reader_password if reader else cfg.admin_password
    os.environ["MLFLOW_TRACKING_USERNAME"] = cfg.reader_user if reader else cfg.admin_user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password.get_secret_value()
    mlflow.set_tracking_uri(cfg.tracking_uri)
    return cfg.tracking_uri


def ensure_reader_user(settings: Settings) -> str:
    """Create the read-only user the API signs in as, or reset its password to the setting;
    returns "created" or "updated". Signed in as the admin; safe to run on every start.
    (requests, not httpx: the API image, where compose's mlflow-init runs it, has only it.)"""
    cfg = settings.mlflow
    admin = (cfg.admin_user, cfg.admin_password.get_secret_value())
    body = {"username": cfg.reader_user, "password": cfg.reader_password.get_secret_value()}
    users = f"{cfg.tracking_uri}/api/2.0/mlflow/users"
    created = requests.post(f"{users}/create", json=body, auth=admin, timeout=30)
    if created.ok:
        log.info("MLflow user %s created (read-only)", cfg.reader_user)
        return "created"
    if "RESOURCE_ALREADY_EXISTS" not in created.text:
        created.raise_for_status()
    requests.patch(f"{users}/update-password", json=body, auth=admin, timeout=30).raise_for_status()
    return "updated"


def get_client(settings: Settings | None = None) -> MlflowClient:
    """A client of our MLflow server, signed in."""
    return MlflowClient(use_mlflow(settings))


def get_alias_version(alias: str, settings: Settings | None = None) -> ModelVersion | None:
    """The version an alias points at; None only when the alias (or the model) does not exist.

    Any other failure (registry down, 5xx) is raised: an outage must not read as "no champion".
    """
    settings = settings or get_settings()
    try:
        return get_client(settings).get_model_version_by_alias(settings.mlflow.model_name, alias)
    except MlflowException as error:
        if is_missing(error):
            return None
        raise


def is_missing(error: MlflowException) -> bool:
    """True when the registry answered "no such model or alias", not when it failed."""
    if error.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    # MLflow reports a missing alias of an existing model as a bad parameter.
    return (
        error.error_code == "INVALID_PARAMETER_VALUE"
        and "alias" in error.message
        and ("not found" in error.message)
    )


def get_champion(settings: Settings | None = None) -> ModelVersion | None:
    """The champion version, or None when there is none yet (the one door to it)."""
    return get_alias_version(CHAMPION, settings)


def get_snapshot_batch(version: ModelVersion | None) -> int:
    """The highest ingestion batch a version was trained on (0 for none)."""
    return int(version.tags.get(SNAPSHOT_BATCH_TAG, 0)) if version is not None else 0


def get_snapshot_feedback(version: ModelVersion | None) -> int:
    """The highest correction (feedback id) a version was trained with (0 for none)."""
    return int(version.tags.get(SNAPSHOT_FEEDBACK_TAG, 0)) if version is not None else 0


def load_version(version: str, settings: Settings | None = None):
    """The sklearn pipeline of one registered version (with predict_proba); its files are
    checked against the digest recorded at registration before they are unpickled."""
    import tempfile
    from pathlib import Path

    import mlflow.sklearn

    from prodcat.integrity import download_version, verify_model_dir

    settings = settings or get_settings()
    registered = get_client(settings).get_model_version(settings.mlflow.model_name, version)
    with tempfile.TemporaryDirectory(prefix="prodcat-model-") as folder:
        path = download_version(version, Path(folder), settings)
        verify_model_dir(path, registered)
        return mlflow.sklearn.load_model(str(path))


def promote_version(version: str, settings: Settings | None = None) -> str | None:
    """Point `champion` at version (one call); the former champion keeps `previous`."""
    settings = settings or get_settings()
    client, name = get_client(settings), settings.mlflow.model_name
    former = get_champion(settings)
    if former is not None and former.version != version:
        client.set_registered_model_alias(name, PREVIOUS, former.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    challenger = get_alias_version(CHALLENGER, settings)
    if challenger is not None and challenger.version == version:  # no shadow of itself
        client.delete_registered_model_alias(name, CHALLENGER)
    set_gauge("train.champion_version", int(version))
    log.info(
        "version %s is the champion (previous: %s)", version, former.version if former else None
    )
    return former.version if former else None


def set_challenger(version: str, settings: Settings | None = None) -> None:
    """Point `challenger` at version: the API scores a share of live inputs with it."""
    settings = settings or get_settings()
    get_client(settings).set_registered_model_alias(settings.mlflow.model_name, CHALLENGER, version)
    log.info("version %s is the challenger, shadowed on live traffic", version)


def rollback_champion(settings: Settings | None = None, run_key: str | None = None) -> str:
    """Move `champion` back to `previous`; the demoted version becomes `previous`.

    The plan (target and demoted version) is written as a registered-model tag before any
    alias moves, keyed by run_key (the Airflow run id): a retry after a partial or a full
    success carries out the same plan, so it never flips back. Without a run_key (the CLI),
    each call is a new rollback.
    """
    settings = settings or get_settings()
    target, demoted = plan_rollback(settings, run_key or f"cli-{uuid.uuid4().hex}")
    client, name = get_client(settings), settings.mlflow.model_name
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_alias(name, PREVIOUS, demoted)
    set_gauge("train.champion_version", int(target))
    log.warning("rolled back: champion is version %s again (was %s)", target, demoted)
    return target


def plan_rollback(settings: Settings, run_key: str) -> tuple[str, str]:
    """(target, demoted) for this run key: read from its tag, or worked out and tagged now."""
    client, name = get_client(settings), settings.mlflow.model_name
    key = "rollback." + re.sub(r"[^\w.:/ -]", "_", run_key)  # what MLflow allows in a tag key
    plan = client.get_registered_model(name).tags.get(key)
    if plan is not None:
        target, demoted = plan.split("->")
        log.info("rollback %s was planned before: %s -> %s", run_key, demoted, target)
        return target, demoted
    previous, champion = get_alias_version(PREVIOUS, settings), get_champion(settings)
    if previous is None or champion is None:
        raise ValueError("there is no previous champion to roll back to")
    client.set_registered_model_tag(name, key, f"{previous.version}->{champion.version}")
    return previous.version, champion.version

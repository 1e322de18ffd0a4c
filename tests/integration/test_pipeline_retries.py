"""Airflow runs tasks at least once: a retried train or rollback must not change the outcome.

Against the real MLflow registry and PostgreSQL, with small real models of the fast profile.
"""

from __future__ import annotations

import contextlib

import mlflow
import pytest

from prodcat.config import get_settings
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.training.registry import (
    CHAMPION,
    PREVIOUS,
    get_alias_version,
    get_client,
    plan_rollback,
    promote_version,
    rollback_champion,
)
from prodcat.training.steps import train_challenger

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_versions(stack):
    """Two registered versions of a fresh registered model: 2 champion, 1 previous."""
    settings = get_settings()
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        get_client(settings).delete_registered_model(settings.mlflow.model_name)
    reset_data(confirm=True, settings=settings)
    for i in range(2):
        ingest_next_batch(f"retries-{i}", settings=settings)
    first = train_challenger(settings=settings, run_key="retries-first")
    second = train_challenger(settings=settings, run_key="retries-second")
    promote_version(first["version"], settings)
    promote_version(second["version"], settings)
    return settings, first["version"], second["version"]


def aliases(settings) -> tuple[str, str]:
    return (get_alias_version(CHAMPION, settings).version,
            get_alias_version(PREVIOUS, settings).version)  # fmt: skip


def versions(settings) -> list[str]:
    found = get_client(settings).search_model_versions(f"name = '{settings.mlflow.model_name}'")
    return sorted(v.version for v in found)


def test_a_retried_train_reuses_the_version_its_first_attempt_registered(two_versions):
    settings, _first, second = two_versions
    before = versions(settings)
    again = train_challenger(settings=settings, run_key="retries-second")
    assert again["version"] == second and versions(settings) == before
    tags = get_client(settings).get_model_version(settings.mlflow.model_name, second).tags
    assert int(tags["snapshot.max_batch_id"]) >= 2


def test_a_rollback_retried_after_a_crash_halfway_completes_the_same_plan(two_versions):
    settings, first, second = two_versions
    promote_version(second, settings)  # champion 2, previous 1
    target, _demoted = plan_rollback(settings, "rollback-crashed")  # tagged, then...
    get_client(settings).set_registered_model_alias(settings.mlflow.model_name, CHAMPION, target)
    # ...the task died before moving `previous`: both aliases point at version 1 now.
    assert aliases(settings) == (first, first)
    assert rollback_champion(settings, run_key="rollback-crashed") == first
    assert aliases(settings) == (first, second)


def test_a_rollback_retried_after_it_succeeded_does_not_flip_back(two_versions):
    settings, first, second = two_versions
    promote_version(second, settings)
    assert rollback_champion(settings, run_key="rollback-twice") == first
    assert rollback_champion(settings, run_key="rollback-twice") == first
    assert aliases(settings) == (first, second)
    # A new rollback (another run) is a new decision: it goes back to version 2.
    assert rollback_champion(settings, run_key="rollback-again") == second


def test_a_rollback_without_a_previous_champion_fails_clearly(two_versions):
    settings, first, _second = two_versions
    client, name = get_client(settings), settings.mlflow.model_name
    client.delete_registered_model_alias(name, PREVIOUS)
    try:
        with pytest.raises(ValueError, match="no previous champion"):
            rollback_champion(settings, run_key="rollback-nothing")
    finally:
        client.set_registered_model_alias(name, PREVIOUS, first)

"""ml_pipeline's tasks when MLflow goes away, and when a task's process is SIGKILLed.

Each task is one package function (dags/ml_pipeline.py), so these call the functions as
Airflow's attempts would: the first attempt with the fault, then the retry. Every attempt
under the fault must fail (Airflow retries a failed task), must not read the outage as "no
champion" (a pointless retrain, a promotion with no comparison), and must leave nothing
behind that the retry would duplicate: in the end, exactly one new version and the right
aliases. Against the real MLflow server, PostgreSQL and S3 of the test stack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from mlflow.exceptions import MlflowException

from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.integrity import ARTIFACT_SHA256_TAG
from prodcat.training.registry import (
    CHAMPION,
    PREVIOUS,
    SNAPSHOT_BATCH_TAG,
    SNAPSHOT_IDS_TAG,
    SNAPSHOT_ROWS_TAG,
    get_alias_version,
    get_client,
    promote_version,
)
from prodcat.training.steps import (
    check_retraining,
    evaluate_challenger,
    find_training_runs,
    gate_version,
    promote_if_approved,
    train_challenger,
)

from ..e2e.platform import wait_for
from .breaking import wait_all_healthy

pytestmark = pytest.mark.integration
OUTAGE = (MlflowException, requests.exceptions.RequestException)


@pytest.fixture(scope="module")
def useless_champion(stack, settings):
    """A fresh registered model whose champion (v1) was trained on shuffled labels and
    promoted by hand: any real challenger beats it, so the gate approves one."""
    wait_all_healthy(stack)
    with contextlib.suppress(MlflowException):
        get_client(settings).delete_registered_model(settings.mlflow.model_name)
    reset_data(confirm=True, settings=settings)
    for i in range(2):
        ingest_next_batch(f"pipeline-faults-{i}", settings=settings)
    useless = train_challenger(settings=settings, shuffle_labels=True, run_key="faults-useless")
    return useless["version"]


@pytest.fixture
def champion(useless_champion, settings, monkeypatch):
    """v1 is the champion with no previous; MLflow calls fail at once instead of retrying."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    promote_version(useless_champion, settings)
    with contextlib.suppress(MlflowException):
        get_client(settings).delete_registered_model_alias(settings.mlflow.model_name, PREVIOUS)
    return useless_champion


@contextlib.contextmanager
def mlflow_stopped(stack):
    stack.down(["mlflow"])
    try:
        yield
    finally:
        stack.up(["mlflow"])


def versions(settings) -> list[str]:
    found = get_client(settings).search_model_versions(f"name = '{settings.mlflow.model_name}'")
    return sorted((v.version for v in found), key=int)


def aliases(settings) -> tuple[str | None, str | None]:
    found = [get_alias_version(a, settings) for a in (CHAMPION, PREVIOUS)]
    return tuple(v.version if v else None for v in found)


def version_tags(settings, version: str) -> dict[str, str]:
    return get_client(settings).get_model_version(settings.mlflow.model_name, version).tags


@pytest.mark.timeout(1200)
def test_each_task_fails_while_mlflow_is_down_and_its_retry_completes_the_run(
    stack, settings, champion
):
    before = versions(settings)
    with mlflow_stopped(stack):
        with pytest.raises(OUTAGE):  # not "no champion", which would start a retrain
            check_retraining(settings)
        with pytest.raises(OUTAGE):
            train_challenger(settings=settings, run_key="faults-outage")
    decision = check_retraining(settings)
    assert decision.champion_version == champion and decision.reason == "healthy"
    assert versions(settings) == before  # the failed attempt registered nothing

    trained = train_challenger(settings=settings, run_key="faults-outage")
    assert versions(settings) == [*before, trained["version"]]
    with mlflow_stopped(stack), pytest.raises(OUTAGE):
        evaluate_challenger(trained["run_id"], trained["version"], settings)
    metrics = evaluate_challenger(trained["run_id"], trained["version"], settings)
    logged = get_client(settings).get_run(trained["run_id"])
    assert logged.data.metrics["eval_f1_weighted"] == pytest.approx(metrics["f1_weighted"])

    with mlflow_stopped(stack), pytest.raises(OUTAGE):
        gate_version(trained["version"], settings)
    assert "gate.decision" not in version_tags(settings, trained["version"])
    gated = gate_version(trained["version"], settings)
    # Compared with the champion, which was really scored: not "no champion yet".
    assert gated["champion"] == champion and gated["champion_f1"] is not None
    assert gated["promote"] and gated["challenger_f1"] > gated["champion_f1"]
    assert f"gate.vs_{trained['version']}" in version_tags(settings, champion)

    with mlflow_stopped(stack), pytest.raises(OUTAGE):
        promote_if_approved(gated, settings)
    assert aliases(settings) == (champion, None)
    assert promote_if_approved(gated, settings) == trained["version"]
    assert promote_if_approved(gated, settings) == trained["version"]  # a retry after success
    assert aliases(settings) == (trained["version"], champion)
    assert versions(settings) == [*before, trained["version"]]


def start_training(run_key: str) -> subprocess.Popen:
    """train_challenger in a process of its own, as an Airflow task runs it."""
    code = ("from prodcat.training.steps import train_challenger; "
            f"train_challenger(run_key={run_key!r})")  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def run_of(settings, run_key: str):
    found = find_training_runs(run_key, settings)
    return found[0] if found else None


def version_of(settings, run_key: str) -> str | None:
    run = run_of(settings, run_key)
    if run is None:
        return None
    found = get_client(settings).search_model_versions(
        f"name = '{settings.mlflow.model_name}' and run_id = '{run.info.run_id}'"
    )
    return found[0].version if found else None


def kill_when(process: subprocess.Popen, condition, what: str) -> None:
    """SIGKILL the process as soon as condition holds; it must still have been running."""
    wait_for(lambda: condition() or process.poll() is not None, 600, what, every=0.05)
    os.kill(process.pid, signal.SIGKILL)
    returncode = process.wait(60)
    assert returncode == -signal.SIGKILL, f"it ended before the kill: {process.stderr.read()}"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("moment", ["searching", "registered"])
def test_a_task_killed_mid_way_then_retried_leaves_exactly_one_version(
    stack, settings, champion, moment
):
    """Killed while it searches (its MLflow run exists, no version yet), or right after its
    version was registered (before its tags were complete); the retry of the same run key
    ends with one version, fully tagged, which the gate then promotes over the champion."""
    run_key, before = f"faults-killed-{moment}-{time.time_ns()}", versions(settings)
    process = start_training(run_key)
    if moment == "searching":
        kill_when(process, lambda: run_of(settings, run_key) is not None, "the training run")
        assert version_of(settings, run_key) is None
    else:
        kill_when(process, lambda: version_of(settings, run_key) is not None, "the version")

    retried = train_challenger(settings=settings, run_key=run_key)
    assert train_challenger(settings=settings, run_key=run_key) == retried
    assert versions(settings) == [*before, retried["version"]]
    tags = version_tags(settings, retried["version"])
    expected = {SNAPSHOT_BATCH_TAG, SNAPSHOT_ROWS_TAG, SNAPSHOT_IDS_TAG, ARTIFACT_SHA256_TAG}
    assert expected <= set(tags)
    evaluate_challenger(retried["run_id"], retried["version"], settings)
    promote_if_approved(gate_version(retried["version"], settings), settings)
    assert aliases(settings) == (retried["version"], champion)

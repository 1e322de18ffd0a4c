"""Training, the quality gate and the registry against the real MLflow server and PostgreSQL."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from prodcat.config import get_settings
from prodcat.data.dataset import BUNDLED
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.integrity import ARTIFACT_SHA256_TAG, digest_model_dir, download_version
from prodcat.training.compact import CalibratedLinearEnsemble
from prodcat.training.features import count_features
from prodcat.training.registry import (
    CHAMPION,
    PREVIOUS,
    get_alias_version,
    get_client,
    load_version,
    promote_version,
    rollback_champion,
    use_mlflow,
)
from prodcat.training.steps import (
    check_retraining,
    evaluate_challenger,
    gate_version,
    promote_if_approved,
    train_challenger,
)

pytestmark = pytest.mark.integration
DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def trained(stack):
    """Fresh data (two batches of the designations file) and a first, promoted champion."""
    settings = get_settings()
    # Start from an empty registry, whatever earlier runs left in this test stack.
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        get_client(settings).delete_registered_model(settings.mlflow.model_name)
    reset_data(confirm=True, settings=settings)
    for i in range(2):
        ingest_next_batch(f"training-data-{i}", settings=settings)
    first = train_challenger(pendulum.datetime(2026, 11, 1, tz="UTC"), settings)
    metrics = evaluate_challenger(first["run_id"], first["version"], settings)
    decision = gate_version(first["version"], settings)
    promote_if_approved(decision, settings)
    champion = get_alias_version(CHAMPION).version
    return {"first": first, "metrics": metrics, "decision": decision, "champion": champion}


@pytest.fixture(scope="module")
def bad(trained):
    """A deliberately useless challenger (shuffled labels), registered but not gated."""
    return train_challenger(settings=get_settings(), shuffle_labels=True)


@pytest.fixture
def first_is_champion(trained):
    """The first version is the champion, with no previous, whatever other tests did."""
    client, name = get_client(), get_settings().mlflow.model_name
    client.set_registered_model_alias(name, CHAMPION, trained["first"]["version"])
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.delete_registered_model_alias(name, PREVIOUS)
    return trained["first"]["version"]


@contextlib.contextmanager
def training_settings(**values: str):
    """PRODCAT_TRAINING__* overrides for this process (and the DAGs it runs in-process)."""
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in values.items():
                patch.setenv(f"PRODCAT_TRAINING__{key.upper()}", value)
            get_settings.cache_clear()
            yield
    finally:
        get_settings.cache_clear()


def test_the_first_run_promotes_because_there_is_no_champion(trained):
    decision = trained["decision"]
    assert decision["promote"] and decision["champion"] is None
    assert "no champion" in decision["reason"]
    assert trained["champion"] == trained["first"]["version"]
    assert trained["metrics"]["f1_weighted"] > 0.5


def test_the_run_logs_metrics_search_results_snapshot_and_confusion_matrix(trained):
    client = get_client()
    run = client.get_run(trained["first"]["run_id"])
    for key in ("eval_f1_weighted", "eval_f1_macro", "eval_accuracy", "eval_ece",
                "cv_f1_weighted", "training_seconds"):  # fmt: skip
        assert key in run.data.metrics
    assert (
        run.data.tags["snapshot.row_count"] == str(int(run.data.tags["snapshot.row_count"]))
        and int(run.data.tags["snapshot.row_count"]) > 3000
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/classification_report.json",
        "evaluation/reliability.json",
        "evaluation/reliability_diagram.png",
    } <= artifacts
    reliability = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation/reliability.json")
    assert reliability["ece"] == pytest.approx(run.data.metrics["eval_ece"])
    report = mlflow.artifacts.load_dict(
        f"runs:/{run.info.run_id}/evaluation/classification_report.json"
    )
    assert (
        sum(b["count"] for b in reliability["bins"]) == report["weighted avg"]["support"]
    )  # every row
    cv = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/search/cv_results.json")
    assert {c["candidate"] for c in cv["candidates"]} >= {"linear_svc", "complement_nb"}


def test_the_registered_version_carries_the_digest_of_its_stored_files(trained, tmp_path):
    settings, version = get_settings(), trained["first"]["version"]
    tags = get_client().get_model_version(settings.mlflow.model_name, version).tags
    stored = digest_model_dir(download_version(version, tmp_path, settings))
    assert tags[ARTIFACT_SHA256_TAG] == stored


def test_the_run_logs_the_models_size_and_feature_count(trained, tmp_path):
    settings, first = get_settings(), trained["first"]
    run = get_client().get_run(first["run_id"])
    folder = download_version(first["version"], tmp_path, settings)
    metrics = run.data.metrics
    assert metrics["model_size_bytes"] == (folder / "model.pkl").stat().st_size
    assert metrics["model_features"] == count_features(mlflow.sklearn.load_model(str(folder)))
    assert metrics["model_features"] > 1000
    rows = int(run.data.tags["snapshot.row_count"])
    assert metrics["training_rows"] == rows
    assert metrics["search_rows"] == min(rows, settings.training.search_rows)


def test_past_search_rows_the_search_samples_and_the_refit_streams_every_row(trained):
    with training_settings(search_rows="1000", profile="winner"):
        settings = get_settings()
        done = train_challenger(settings=settings)
        metrics = evaluate_challenger(done["run_id"], done["version"], settings)
    run = get_client().get_run(done["run_id"])
    rows = int(run.data.tags["snapshot.row_count"])
    assert run.data.metrics["search_rows"] == 1000 < rows == run.data.metrics["training_rows"]
    assert run.data.params["refit"] == "streamed"
    model = load_version(done["version"], settings)
    assert isinstance(model.steps[-1][1], CalibratedLinearEnsemble)
    assert metrics["f1_weighted"] > settings.training.f1_floor


def test_the_champion_loads_by_alias_and_predicts_with_probabilities(trained):
    settings = get_settings()
    use_mlflow(settings)
    model = mlflow.sklearn.load_model(f"models:/{settings.mlflow.model_name}@champion")
    rows = pd.DataFrame(
        {"title": ["Figurine Pop Star Wars", "Piscine gonflable ronde"],
         "description": ["<b>vinyle</b> &eacute;dition", ""]}
    )  # fmt: skip
    probabilities = model.predict_proba(rows)
    assert probabilities.shape == (2, len(model.classes_))
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-6
    assert list(model.predict(rows)) == list(model.classes_[probabilities.argmax(axis=1)])


def test_a_worse_challenger_is_refused_with_the_reason_tagged(first_is_champion, bad):
    decision = gate_version(bad["version"])
    assert not decision["promote"]
    assert promote_if_approved(decision) is None
    assert get_alias_version(CHAMPION).version == first_is_champion
    tags = get_client().get_model_version(get_settings().mlflow.model_name, bad["version"]).tags
    assert tags["gate.decision"] == "refused"
    assert "below the floor" in tags["gate.reason"] or "does not beat" in tags["gate.reason"]


def test_a_challenger_whose_confidence_is_off_is_refused_with_its_ece_tagged(first_is_champion):
    with training_settings(max_ece="0.0"):  # no real model is perfectly calibrated
        decision = gate_version(first_is_champion)
    assert not decision["promote"] and "ECE" in decision["reason"]
    assert 0 < decision["challenger_ece"] < 1
    tags = get_client().get_model_version(get_settings().mlflow.model_name, first_is_champion).tags
    assert tags["gate.decision"] == "refused"
    assert float(tags["gate.challenger_ece"]) == pytest.approx(decision["challenger_ece"], abs=1e-6)
    assert get_alias_version(CHAMPION).version == first_is_champion


def prodcat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prodcat.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_rollback_restores_the_previous_champion(first_is_champion, bad):
    good, bad = first_is_champion, bad["version"]
    promoted = prodcat("promote", bad)  # a manual promotion, through the CLI
    assert promoted.returncode == 0, promoted.stderr
    assert get_alias_version(CHAMPION).version == bad
    assert get_alias_version(PREVIOUS).version == good
    rolled_back = prodcat("rollback")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert rolled_back.stdout.strip() == f"champion: version {good}"
    assert get_alias_version(CHAMPION).version == good
    # and through the function, which toggles back and forth between the two
    assert rollback_champion() == bad
    promote_version(good)


def test_ml_pipeline_skips_when_the_champion_is_healthy(first_is_champion):
    # No trigger can fire, whatever other tests ingested: only "healthy" is left.
    with training_settings(f1_threshold="0", backlog_threshold="1000000000"):
        decision = check_retraining()
        assert not decision.retrain and decision.reason == "healthy"
        run = (
            DagBag(dag_folder=str(DAGS))
            .dags["ml_pipeline"]
            .test(logical_date=pendulum.datetime(2026, 11, 2, tz="UTC"))
        )
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["skip_training"] == "success" and states["end"] == "success"
    assert states["train"] == "skipped"


def test_ml_pipeline_retrains_when_the_backlog_threshold_is_lowered(first_is_champion):
    ingest_next_batch("backlog-batch", settings=get_settings())
    # The F1 trigger comes before the backlog one: off here, so the backlog alone decides.
    with training_settings(backlog_threshold="1000", f1_threshold="0"):
        assert check_retraining().reason == "backlog"
        run = (
            DagBag(dag_folder=str(DAGS))
            .dags["ml_pipeline"]
            .test(logical_date=pendulum.datetime(2026, 11, 3, tz="UTC"))
        )
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert [states[t] for t in ("train", "evaluate", "gate", "promote", "end")] == ["success"] * 5
    assert states["skip_training"] == "skipped"


def test_workers_starting_together_each_load_the_champion(trained, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from prodcat.serving.model_store import load_champion, local_copy_dir

    settings = get_settings().model_copy(update={"state_dir": tmp_path})  # no local copy yet
    with ThreadPoolExecutor(3) as pool:
        loaded = list(pool.map(lambda _: load_champion(settings), range(3)))
    champion = get_alias_version(CHAMPION).version
    assert [(m.source, m.version) for m in loaded] == [("registry", champion)] * 3
    kept = sorted(p.name for p in local_copy_dir(settings).iterdir())
    assert len(kept) == 2 and kept[1] == "current.json" and kept[0].startswith(f"{champion}-")


def test_the_api_serves_the_champion_and_starts_from_its_local_copy_without_the_registry(
    trained, stack
):
    from fastapi.testclient import TestClient

    from prodcat.serving.app import create_app

    champion = get_alias_version(CHAMPION).version
    with TestClient(create_app(poll=False)) as client:
        ready = client.get("/ready").json()
        assert ready["ready"] and ready["model_version"] == champion and not ready["stale"]
        answer = client.post("/predict/", json={"title": "Figurine Pop Star Wars"}).json()
        assert answer["model_version"] == champion and 0 < answer["confidence"] <= 1
        assert answer["category_name"]  # names from the dataset's label file, inside the model

    stack.down(["mlflow"])
    try:
        with TestClient(create_app(poll=False)) as client:
            ready = client.get("/ready").json()
            assert ready["ready"] and ready["model_version"] == champion and ready["stale"]
            assert client.get("/model").json()["source"] == "local-copy"
            assert client.post("/predict/", json={"title": "Piscine"}).status_code == 200
    finally:
        stack.up(["mlflow"])


def test_ml_pipeline_skips_with_the_reason_logged_while_too_few_rows_are_in(trained, caplog):
    with training_settings(min_rows="1000000"):
        with caplog.at_level("INFO", logger="prodcat.training.steps"):
            decision = check_retraining()
        run = (
            DagBag(dag_folder=str(DAGS))
            .dags["ml_pipeline"]
            .test(logical_date=pendulum.datetime(2026, 11, 4, tz="UTC"))
        )
    assert not decision.retrain and decision.reason == "too_few_rows"
    assert "fewer than PRODCAT_TRAINING__MIN_ROWS (1000000)" in caplog.text
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and states["skip_training"] == "success"
    assert states["train"] == "skipped"


def test_no_model_is_trained_without_an_evaluation_set(trained, tmp_path):
    spec = (BUNDLED / "rakuten-designations.yaml").read_text()
    (tmp_path / "fresh.yaml").write_text(spec.replace("rakuten-designations", "never-ingested"))
    base = get_settings()
    settings = base.model_copy(
        update={"data": base.data.model_copy(update={"dataset": str(tmp_path / "fresh.yaml")})}
    )
    assert check_retraining(settings).reason == "no_evaluation_set"
    with pytest.raises(ValueError, match="no evaluation set"):
        train_challenger(settings=settings)

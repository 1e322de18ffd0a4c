"""The API's local model store against the real registry and S3: a failed download leaves
nothing, the local copy is only ever a model that loaded, old copies are deleted, and a model
whose stored files were swapped is never unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from sklearn.dummy import DummyClassifier

from prodcat.integrity import ModelIntegrityError, tag_artifact_digest
from prodcat.serving.app import create_app
from prodcat.serving.model_store import load_champion, local_copy_dir
from prodcat.training.registry import CHAMPION, PREVIOUS, get_client, load_version, use_mlflow

from ..models import register_small_models, wait_until

pytestmark = pytest.mark.integration
MODEL_NAME = "prodcat-store-test"


@pytest.fixture
def store(settings, tmp_path):
    """Settings with a local store of the test's own, and three small registered versions."""
    own = settings.model_copy(update={
        "state_dir": tmp_path,
        "mlflow": settings.mlflow.model_copy(update={"model_name": MODEL_NAME}),
        "api": settings.api.model_copy(update={"model_copies": 2}),
    })  # fmt: skip
    versions = register_small_models(own, MODEL_NAME, 3)
    return own, versions


def set_champion(settings, version: str) -> None:
    get_client(settings).set_registered_model_alias(MODEL_NAME, CHAMPION, version)


def pointer(settings) -> dict:
    return json.loads((local_copy_dir(settings) / "current.json").read_text())


def test_only_the_newest_copies_are_kept(store):
    settings, versions = store
    for version in versions:
        set_champion(settings, version)
        assert load_champion(settings).version == version
    kept = sorted(p.name.split("-")[0] for p in local_copy_dir(settings).iterdir() if p.is_dir())
    assert kept == sorted(versions[1:])  # model_copies=2: the current one and the one before
    assert pointer(settings)["version"] == versions[2]


def test_a_model_the_api_cannot_serve_never_becomes_the_local_copy(store):
    settings, versions = store
    set_champion(settings, versions[0])
    assert load_champion(settings).source == "registry"
    with mlflow.start_run(run_name="no-cleaner"):  # a model without the ProductTextCleaner
        bare = DummyClassifier().fit([[0], [1]], ["10", "40"])
        info = mlflow.sklearn.log_model(bare, name="model", registered_model_name=MODEL_NAME)
    set_champion(settings, str(info.registered_model_version))

    served = load_champion(settings)  # refused from the registry: the last good copy serves
    assert (served.version, served.source) == (versions[0], "local-copy")
    assert served.refused == str(info.registered_model_version)  # polls will not fetch it again
    assert pointer(settings)["version"] == versions[0]


def test_registry_reachable_but_s3_stopped_leaves_no_partial_download(stack, store):
    settings, versions = store
    set_champion(settings, versions[0])
    assert load_champion(settings).version == versions[0]
    set_champion(settings, versions[1])
    stack.down(["s3"])
    try:
        served = load_champion(settings)  # the download fails: the old copy serves
        assert (served.version, served.source) == (versions[0], "local-copy")
        assert served.refused is None  # an outage refuses nothing: the next poll tries again
    finally:
        stack.up(["s3"])
    folder = local_copy_dir(settings)
    assert not list(folder.glob(".*.partial")), os.listdir(folder)
    assert pointer(settings)["version"] == versions[0]
    wait_until(lambda: load_champion(settings).version == versions[1], 60, "the new version")
    assert pointer(settings)["version"] == versions[1]


def test_a_tampered_artifact_is_refused_everywhere_and_ready_says_why(store, tmp_path):
    settings, versions = store
    good, target = versions[0], versions[1]
    for version in (good, target):
        tag_artifact_digest(version, settings)
    set_champion(settings, good)
    assert load_champion(settings).version == good
    # Someone with write access to the artifact store swaps the next version's pickle.
    client = get_client(settings)
    stored = client.get_model_version_download_uri(MODEL_NAME, target)
    forged = tmp_path / "forged" / "model.pkl"
    forged.parent.mkdir()
    forged.write_bytes(b"cposix\nsystem\n(S'echo owned'\ntR.")
    get_artifact_repository(stored).log_artifact(str(forged))
    set_champion(settings, target)

    with pytest.raises(ModelIntegrityError, match=f"version {target} refused"):
        load_version(target, settings)  # the pipeline's own door: evaluation, gate, drift
    served = load_champion(settings)
    assert (served.version, served.source) == (good, "local-copy")
    assert f"version {target} refused: its files' SHA-256" in served.note
    assert served.refused == target
    assert not any(p.name.startswith(f"{target}-") for p in local_copy_dir(settings).iterdir())
    with TestClient(create_app(settings, poll=False)) as api:
        ready = api.get("/ready").json()
        assert ready["model_version"] == good and ready["stale"]
        assert f"version {target} refused" in ready["detail"]
        assert api.post("/predict/", json={"title": "console manette"}).status_code == 200


def register_model_dir(settings, folder) -> str:
    """Register a saved model directory byte for byte (its pickle is not made again)."""
    use_mlflow(settings)
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="model-before-training-package") as run:
        mlflow.log_artifacts(str(folder), artifact_path="model")
    client = get_client(settings)
    version = client.create_model_version(
        MODEL_NAME, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    tag_artifact_digest(str(version), settings)
    return str(version)


def test_versions_registered_before_the_training_package_still_load_and_serve(store):
    """Their pickles name prodcat.features, prodcat.inference and prodcat.train."""
    settings, _ = store
    fixtures = Path(__file__).parents[1] / "fixtures"
    svc = register_model_dir(settings, fixtures / "model-before-training-package-svc")
    xgb = register_model_dir(settings, fixtures / "model-before-training-package-xgb")
    client = get_client(settings)
    client.set_registered_model_alias(MODEL_NAME, PREVIOUS, xgb)
    set_champion(settings, svc)
    rows = pd.DataFrame({"title": ["Console Jeu Manette", "Pompe Piscine"], "description": ""})
    previous = client.get_model_version_by_alias(MODEL_NAME, PREVIOUS).version
    assert load_version(previous, settings).predict_proba(rows).shape == (2, 3)
    assert list(load_version(svc, settings).predict(rows)) == ["20", "30"]
    app = create_app(settings, poll=False)
    with TestClient(app) as client:
        body = client.post("/predict/?explain=true", json={"title": "Pompe Piscine Filtre"})
        assert body.status_code == 200, body.text
        assert body.json()["model_version"] == svc
        assert body.json()["explanation"]["category_code"] == "30"

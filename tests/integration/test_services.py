"""Each native service, used for real: PostgreSQL, S3, MLflow, Airflow, Prometheus, the API."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import mlflow
import psycopg2
import pytest
from minio.error import S3Error

from prodcat.stack import airflow as airflow_stack
from prodcat.stack.process import wait_until
from prodcat.storage import get_s3_client
from prodcat.training.registry import ensure_reader_user, get_client, use_mlflow

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_every_service_reports_healthy(stack):
    statuses = stack.status()
    assert [s.name for s in statuses if not s.healthy] == []
    assert all(s.pid for s in statuses)


def test_app_database_accepts_the_app_role(settings):
    cfg = settings.postgres
    conn = psycopg2.connect(
        host=cfg.host, port=cfg.port, dbname=cfg.app_db,
        user=cfg.app_user, password=cfg.app_password.get_secret_value(),
    )  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute("create temporary table probe (v text)")
        cur.execute("insert into probe values (%s) returning v", ("hello",))
        assert cur.fetchone() == ("hello",)
    conn.close()


def test_wrong_database_password_is_refused(settings):
    cfg = settings.postgres
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            host=cfg.host, port=cfg.port, dbname=cfg.app_db, user=cfg.app_user, password="wrong"
        )


def test_s3_buckets_exist_and_store_objects(settings):
    client = get_s3_client(settings)
    assert client.bucket_exists(settings.s3.images_bucket)
    assert client.bucket_exists(settings.s3.mlflow_bucket)
    key = f"tests/{uuid.uuid4()}.txt"
    client.put_object(settings.s3.images_bucket, key, io.BytesIO(b"payload"), 7, "text/plain")
    response = client.get_object(settings.s3.images_bucket, key)
    assert response.read() == b"payload"
    assert response.headers["Content-Type"] == "text/plain"
    client.remove_object(settings.s3.images_bucket, key)


def test_the_api_reads_s3_with_keys_that_cannot_write(stack, settings):
    bucket, key = settings.s3.mlflow_bucket, f"tests/{uuid.uuid4()}.txt"
    get_s3_client(settings).put_object(bucket, key, io.BytesIO(b"model"), 5)
    reader = get_s3_client(settings.model_copy(update={"s3": settings.s3.as_reader()}))
    assert reader.get_object(bucket, key).read() == b"model"
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.put_object(bucket, key, io.BytesIO(b"forged"), 6)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.put_object(bucket, f"tests/{uuid.uuid4()}.txt", io.BytesIO(b"planted"), 7)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.remove_object(bucket, key)
    assert get_s3_client(settings).get_object(bucket, key).read() == b"model"
    # The running API process holds the reader's keys, not the writer's.
    api_pid = next(s.pid for s in stack.status() if s.name == "api")
    environ = dict(
        entry.split("=", 1)
        for entry in Path(f"/proc/{api_pid}/environ").read_text().split("\0")
        if "=" in entry
    )
    assert environ["AWS_ACCESS_KEY_ID"] == settings.s3.reader_access_key
    assert environ["PRODCAT_S3__ACCESS_KEY"] == settings.s3.reader_access_key
    assert environ["PRODCAT_S3__SECRET_KEY"] == settings.s3.reader_secret_key.get_secret_value()


def test_the_api_signs_in_to_mlflow_as_a_user_who_can_read_but_not_write(stack, settings):
    cfg, name = settings.mlflow, f"probe-{uuid.uuid4().hex[:8]}"
    api = f"{cfg.tracking_uri}/api/2.0/mlflow"
    admin = (cfg.admin_user, cfg.admin_password.get_secret_value())
    reader = (cfg.reader_user, cfg.reader_password.get_secret_value())
    httpx.post(
        f"{api}/registered-models/create", json={"name": name}, auth=admin
    ).raise_for_status()
    found = httpx.get(f"{api}/registered-models/get", params={"name": name}, auth=reader)
    assert found.status_code == 200 and found.json()["registered_model"]["name"] == name
    tag = {"name": name, "key": "artifact.sha256", "value": "forged"}
    assert httpx.post(f"{api}/registered-models/set-tag", json=tag, auth=reader).status_code == 403
    # No new version of a model it did not create, and no alias moves (it may create models
    # of its own, as any signed-in MLflow user may: serving loads only PRODCAT_MLFLOW__MODEL_NAME).
    version = {"name": name, "source": "mlflow-artifacts:/0/forged", "run_id": ""}
    assert httpx.post(f"{api}/model-versions/create", json=version, auth=reader).status_code == 403
    alias = {"name": name, "alias": "champion", "version": "1"}
    assert httpx.post(f"{api}/registered-models/alias", json=alias, auth=reader).status_code == 403
    upload = f"{cfg.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/0/forged/model.pkl"
    assert httpx.put(upload, content=b"forged", auth=reader).status_code == 403
    assert ensure_reader_user(settings) == "updated"  # `stack up` made it; again is harmless
    api_pid = next(s.pid for s in stack.status() if s.name == "api")
    environ = Path(f"/proc/{api_pid}/environ").read_text().split("\0")
    assert f"MLFLOW_TRACKING_USERNAME={cfg.reader_user}" in environ
    assert "PRODCAT_MLFLOW__SIGN_IN_AS=reader" in environ
    httpx.delete(f"{api}/registered-models/delete", params={"name": name}, auth=admin)


def test_mlflow_tracks_runs_in_postgres_and_artifacts_in_s3(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow.tracking_uri)
    use_mlflow(settings)
    experiment = mlflow.set_experiment(f"integration-{uuid.uuid4().hex[:8]}")
    artifact = tmp_path / "note.txt"
    artifact.write_text("stored in S3")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("f1", 0.8)
        mlflow.log_artifact(str(artifact))
    client = get_client(settings)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"alpha": "0.5"}
    assert stored.data.metrics == {"f1": 0.8}
    downloaded = client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "dl"))
    assert Path(downloaded).read_text() == "stored in S3"
    keys = [
        o.object_name
        for o in get_s3_client(settings).list_objects(settings.s3.mlflow_bucket, recursive=True)
    ]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/note.txt") for k in keys)


def test_airflow_login_works_and_lists_the_dags_in_dags_folder(settings):
    token = airflow_stack.get_api_token(settings)
    headers = {"Authorization": f"Bearer {token}"}
    expected = {
        line.split('"')[1]
        for path in (ROOT / "dags").glob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith("dag_id=")
    }

    def listed() -> set[str]:
        response = httpx.get(f"{settings.airflow.url}/api/v2/dags", headers=headers, timeout=10)
        response.raise_for_status()
        return {d["dag_id"] for d in response.json()["dags"]}

    # The dag-processor parses the folder on its own schedule; give it a couple of rounds.
    assert wait_until(lambda: listed() >= expected, timeout=120, interval=3), listed()
    errors = httpx.get(f"{settings.airflow.url}/api/v2/importErrors", headers=headers, timeout=10)
    assert errors.json()["total_entries"] == 0, errors.json()


def test_airflow_refuses_a_wrong_password(settings):
    response = httpx.post(
        f"{settings.airflow.url}/auth/token",
        json={"username": settings.airflow.admin_user, "password": "wrong"},
        timeout=10,
    )
    assert response.status_code == 401


def test_airflow_components_are_all_healthy(settings):
    health = httpx.get(f"{settings.airflow.url}/api/v2/monitor/health", timeout=10).json()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health


def test_prometheus_scrapes_the_api(settings):
    def api_is_up() -> bool:
        response = httpx.get(
            f"{settings.prometheus.url}/api/v1/query",
            params={"query": 'up{job="prodcat-api"}'},
            timeout=5,
        )
        result = response.json()["data"]["result"]
        return bool(result) and result[0]["value"][1] == "1"

    assert wait_until(api_is_up, timeout=60, interval=2)


def test_api_is_live_but_not_ready_without_a_model(settings, tmp_path):
    # Its own `prodcat serve`, asking the real registry for a model it has never held, with
    # no local copy: whatever other tests registered, there is no model to serve.
    name, port = f"never-registered-{uuid.uuid4().hex[:8]}", settings.api.port + 36
    env = {**os.environ, "PRODCAT_API__HOST": "127.0.0.1", "PRODCAT_API__PORT": str(port),
           "PRODCAT_API__WORKERS": "1", "PRODCAT_STATE_DIR": str(tmp_path / "state"),
           "PRODCAT_MLFLOW__MODEL_NAME": name, "PRODCAT_API__LOG_PREDICTIONS": "false"}  # fmt: skip
    url, log_file = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "prodcat"), "serve"],
                                   cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip
    try:
        assert wait_until(lambda: answers(f"{url}/health"), timeout=120, interval=1), (
            log_file.read_text()[-3000:]
        )
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["model_name"] == name
        assert body["model_version"] is None
        assert body["detail"] == f"no version of {name} has the 'champion' alias yet"
    finally:
        process.terminate()
        process.wait(timeout=60)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_mlflow_lets_in_only_its_signed_in_user(settings):
    """Models are code: MLflow's registry answers only with PRODCAT_MLFLOW__ADMIN_* (its
    health check excepted, for supervisors and compose)."""
    url = f"{settings.mlflow.tracking_uri}/api/2.0/mlflow/registered-models/search"
    user = settings.mlflow.admin_user
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(user, "not-the-password")).status_code == 401
    signed_in = httpx.get(url, auth=(user, settings.mlflow.admin_password.get_secret_value()))
    assert signed_in.status_code == 200
    assert httpx.get(f"{settings.mlflow.tracking_uri}/health").status_code == 200

"""drift_detection on the real stack: PostgreSQL, S3, MLflow, Airflow and the API.

The source is the real designations file, cut to its first 6,000 rows in a raw directory of
the test's own. A champion is trained on it; then the source grows, as a shop's export does,
by real listings whose titles are cut to their first three words: the shifted window.
"""

from __future__ import annotations

import contextlib
import logging
import shutil

import httpx
import mlflow
import pandas as pd
import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag

from prodcat.config import get_settings
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.db import get_engine
from prodcat.drift.check import check_window, purge_prediction_log
from prodcat.stack.airflow import get_api_token
from prodcat.storage import get_s3_client
from prodcat.training.registry import get_client
from prodcat.training.steps import (
    check_retraining,
    evaluate_challenger,
    gate_version,
    promote_if_approved,
    train_challenger,
)

from ..models import ROOT, wait_until

pytestmark = pytest.mark.integration
FIRST_ROWS, SHIFTED_ROWS = 6000, 2000


def shifted_rows(source: pd.DataFrame, start: int) -> pd.DataFrame:
    """Real listings from `start` on, their titles cut to the first three words."""
    rows = source.iloc[start : start + SHIFTED_ROWS]
    return rows.assign(designation=[" ".join(t.split()[:3]) for t in rows["designation"]])


@pytest.fixture(scope="module")
def drift_env(stack, tmp_path_factory):
    """A champion trained on the first rows, then one shifted batch ingested after it."""
    raw = tmp_path_factory.mktemp("raw")
    original = get_settings().data.raw_dir
    shutil.copy(original / "categories.csv", raw / "categories.csv")
    source = pd.read_csv(original / "designations.csv", dtype=str, keep_default_na=False)
    source.iloc[:FIRST_ROWS].to_csv(raw / "designations.csv", index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRODCAT_DATA__RAW_DIR", str(raw))
        get_settings.cache_clear()
        settings = get_settings()
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            get_client(settings).delete_registered_model(settings.mlflow.model_name)
        reset_data(confirm=True, settings=settings)
        for i in range(2):
            ingest_next_batch(f"drift-base-{i}", settings=settings)
        trained = train_challenger(settings=settings)
        evaluate_challenger(trained["run_id"], trained["version"], settings)
        promote_if_approved(gate_version(trained["version"], settings), settings)
        grow_source(raw, source, FIRST_ROWS, "drift-shifted-0", settings)
        yield {"settings": settings, "raw": raw, "source": source, "version": trained["version"]}
    get_settings.cache_clear()


def grow_source(raw, source, start: int, run_key: str, settings) -> None:
    """Append shifted listings to the source file and ingest them as one batch."""
    shifted_rows(source, start).to_csv(raw / "designations.csv", mode="a", header=False,
                                       index=False)  # fmt: skip
    batch = ingest_next_batch(run_key, settings=settings)
    assert batch.rows_accepted >= settings.drift.min_rows  # some cut titles become duplicates


def run_drift_dag(when: pendulum.DateTime):
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["drift_detection"]
    run = dag.test(logical_date=when)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def reports_of(settings, run_id: str) -> dict[str, dict]:
    with get_engine(settings).connect() as conn:
        rows = conn.exec_driver_sql(
            "select window_name, status, report_key, retrain_triggered, current_rows "
            "from drift_reports where run_key = %s",
            (run_id,),
        ).all()
    return {r.window_name: dict(r._mapping) for r in rows}


def airflow_run(settings, dag_id: str, run_id: str) -> httpx.Response:
    token = get_api_token(settings)
    return httpx.get(f"{settings.airflow.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip


@pytest.fixture(scope="module")
def first_drift(drift_env):
    """The first drift_detection run after the shifted batch, before any other check or traffic:
    the run that triggers ml_pipeline (and so starts the cooldown)."""
    return run_drift_dag(pendulum.now("UTC").add(minutes=1))


def test_a_drifted_window_triggers_ml_pipeline_with_reason_drift(drift_env, first_drift, caplog):
    settings = drift_env["settings"]
    run, states = first_drift
    assert run.state == "success", states
    assert states["trigger_ml_pipeline"] == "success"
    assert states["purge_prediction_log"] == "success"
    reports = reports_of(settings, run.run_id)
    assert reports["new_data"]["status"] == "drift" and reports["new_data"]["retrain_triggered"]
    assert reports["live_traffic"]["status"] == "insufficient_data"  # no traffic yet
    stat = get_s3_client(settings).stat_object(
        settings.s3.reports_bucket, reports["new_data"]["report_key"]
    )
    assert stat.size > 10_000 and stat.content_type.startswith("text/html")

    triggered = airflow_run(settings, "ml_pipeline", f"drift__{run.run_id}")
    assert triggered.status_code == 200, triggered.text
    reason = triggered.json()["conf"]["reason"]
    assert reason == "drift"
    with caplog.at_level(logging.INFO, logger="prodcat.training.steps"):
        decision = check_retraining(settings, reason)
    assert decision.retrain and decision.reason == "drift"
    assert '"reason": "drift"' in caplog.text


def test_a_second_drift_inside_the_cooldown_does_not_trigger(drift_env, first_drift):
    settings, first = drift_env["settings"], first_drift[0]
    grow_source(drift_env["raw"], drift_env["source"], FIRST_ROWS + SHIFTED_ROWS,
                "drift-shifted-1", settings)  # fmt: skip
    run, states = run_drift_dag(pendulum.now("UTC").add(hours=1))
    assert run.state == "success", states
    reports = reports_of(settings, run.run_id)
    assert reports["new_data"]["status"] == "drift" and not reports["new_data"]["retrain_triggered"]
    # Only the second shifted batch: the first was the previous check's window.
    assert reports["new_data"]["current_rows"] <= SHIFTED_ROWS
    assert states["decide_retraining"] == "success"
    assert states["trigger_ml_pipeline"] == "skipped"
    assert airflow_run(settings, "ml_pipeline", f"drift__{run.run_id}").status_code == 404
    assert airflow_run(settings, "ml_pipeline", f"drift__{first.run_id}").status_code == 200


def test_a_window_without_new_rows_is_insufficient_data(drift_env, first_drift):
    settings = drift_env["settings"]
    result = check_window("new_data", pendulum.now("UTC").add(hours=2), "drift-empty", settings)
    assert result["status"] == "insufficient_data" and result["current_rows"] == 0
    assert result["report_key"] is None and result["drift_share"] is None


def test_shifted_live_traffic_drifts_and_the_api_shows_the_latest_reports(drift_env, first_drift):
    from fastapi.testclient import TestClient

    from prodcat.serving.app import create_app

    settings, source = drift_env["settings"], drift_env["source"]
    # The latest new_data check, its own: every ingested row was already checked.
    empty = check_window("new_data", pendulum.now("UTC").add(hours=3), "drift-live-new", settings)
    assert empty["status"] == "insufficient_data"
    titles = shifted_rows(source, FIRST_ROWS + 2 * SHIFTED_ROWS)["designation"].tolist()
    sent_from = pendulum.now("UTC")
    with TestClient(create_app(settings, poll=False)) as client:
        for start in range(0, len(titles), 1000):
            items = [{"title": t} for t in titles[start : start + 1000]]
            assert client.post("/predict/batch", json={"items": items}).status_code == 200
        wait_until(lambda: logged_since(settings, sent_from) >= len(titles), 60, "the log")
        result = check_window("live_traffic", pendulum.now("UTC"), "drift-live", settings)
        assert result["status"] == "drift", result["columns"]
        assert result["current_rows"] >= len(titles)
        assert {"predicted_category", "confidence", "chars"} <= set(result["columns"])

        windows = {w["window_name"]: w for w in client.get("/drift").json()["windows"]}
    assert windows["live_traffic"]["status"] == "drift"
    assert windows["live_traffic"]["report_key"] == result["report_key"]
    assert windows["new_data"]["status"] == "insufficient_data"  # the latest: this test's
    assert windows["live_traffic"]["bucket"] == settings.s3.reports_bucket
    get_s3_client(settings).stat_object(settings.s3.reports_bucket, result["report_key"])


def logged_since(settings, since) -> int:
    with get_engine(settings).connect() as conn:
        return conn.exec_driver_sql(
            "select count(*) from prediction_log where predicted_at >= %s", (since,)
        ).scalar_one()


def test_old_predictions_are_purged_in_batches_and_recent_ones_kept(drift_env):
    settings, now = drift_env["settings"], pendulum.now("UTC")
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql(
            "insert into prediction_log (predicted_at, model_version, category_code, confidence,"
            " title_chars, description_chars, input_hash) select %s, 'old', '10', 0.5, 1, 0, "
            "'h' from generate_series(1, 25000)",
            (now.subtract(days=settings.api.log_retention_days + 1),),
        )
        # Recent rows of its own: whatever ran before (in random order), some must be kept.
        conn.exec_driver_sql(
            "insert into prediction_log (predicted_at, model_version, category_code, confidence,"
            " title_chars, description_chars, input_hash) select %s, 'recent', '10', 0.5, 1, 0, "
            "'h' from generate_series(1, 7)",
            (now.subtract(days=1),),
        )
        kept = conn.exec_driver_sql("select count(*) from prediction_log").scalar_one() - 25000
    assert purge_prediction_log(now, settings) == 25000
    assert logged_since(settings, now.subtract(years=10)) == kept > 0

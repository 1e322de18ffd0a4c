"""Every DAG file parses, and every DAG follows the project's conventions."""

import itertools
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"prepare_data", "reset_data", "ml_pipeline", "drift_detection", "batch_predict"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_are_there(dagbag):
    assert set(dagbag.dag_ids) >= EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False
    assert dag.tags and "prodcat" in dag.tags
    assert dag.doc_md and dag.doc_md.strip().startswith(f"### {dag_id}")
    assert dag.default_args["retries"] >= 2
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries}"
        assert task.execution_timeout, f"{dag_id}.{task.task_id} has no execution_timeout"


def test_prepare_data_runs_alone_every_15_minutes(dagbag):
    dag = dagbag.dags["prepare_data"]
    assert dag.max_active_runs == 1
    assert dag.schedule == "*/15 * * * *"


def test_reset_data_is_manual_and_asks_for_confirmation(dagbag):
    dag = dagbag.dags["reset_data"]
    assert dag.schedule is None
    assert dag.params["confirm"] is False


def test_ml_pipeline_branches_and_always_joins(dagbag):
    dag = dagbag.dags["ml_pipeline"]
    branch = dag.get_task("check_retraining")
    assert branch.downstream_task_ids == {"train", "skip_training", "rollback"}
    chain = ["train", "evaluate", "gate", "promote", "end"]
    for upstream, downstream in itertools.pairwise(chain):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    end = dag.get_task("end")
    assert end.trigger_rule == "none_failed_min_one_success"
    assert end.upstream_task_ids == {"promote", "skip_training", "rollback"}


def test_ml_pipeline_runs_hourly_and_when_prepare_data_loads_rows(dagbag):
    schedule = dagbag.dags["ml_pipeline"].timetable
    assert schedule.timetable.expression == "0 * * * *"
    assert [a.uri for a in schedule.asset_condition.objects] == ["prodcat://products/"]
    announce = dagbag.dags["prepare_data"].get_task("announce_new_rows")
    assert [o.uri for o in announce.outlets] == ["prodcat://products/"]
    assert dagbag.dags["prepare_data"].get_task("loaded_rows").downstream_task_ids == {
        "announce_new_rows"
    }


def test_drift_detection_checks_both_windows_every_2_hours_then_may_trigger_ml_pipeline(dagbag):
    dag = dagbag.dags["drift_detection"]
    assert dag.schedule == "0 */2 * * *" and dag.max_active_runs == 1
    decide = dag.get_task("decide_retraining")
    assert decide.upstream_task_ids == {"check_new_data", "check_live_traffic"}
    trigger = dag.get_task("trigger_ml_pipeline")
    assert decide.downstream_task_ids == {"trigger_ml_pipeline"}
    assert trigger.trigger_dag_id == "ml_pipeline" and trigger.conf == {"reason": "drift"}
    assert "purge_prediction_log" in dag.task_ids


def test_batch_predict_runs_nightly_alone(dagbag):
    dag = dagbag.dags["batch_predict"]
    assert dag.schedule == "0 2 * * *" and dag.max_active_runs == 1
    assert dag.task_ids == ["score_listings"]

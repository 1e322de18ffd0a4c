"""
### drift_detection

Every 2 hours (`PRODCAT_SCHEDULES__DRIFT_DETECTION`), compares two windows with the champion's
own data, each on its own, with Evidently:

- **new_data**: listings ingested since the previous check, against a sample of the
  champion's training snapshot: labels, text descriptors, out-of-vocabulary share;
- **live_traffic**: the champion's predictions in `prediction_log`, against its predictions
  on the held-out evaluation set: predicted category, confidence, and the text descriptors
  when raw text is logged.

Each check writes an HTML report to the reports bucket (its location is in the task log), a
row to `drift_reports`, and StatsD gauges. When a window drifts, and drift has not already
triggered retraining within `PRODCAT_DRIFT__COOLDOWN_HOURS`, `ml_pipeline` runs with reason
`drift`; its gate alone decides promotion. A window with fewer than `PRODCAT_DRIFT__MIN_ROWS`
rows is "insufficient data": no decision, no alarm.

It also deletes `prediction_log` rows older than `PRODCAT_API__LOG_RETENTION_DAYS`.
"""

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from prodcat.config import get_settings

settings = get_settings()


@dag(
    dag_id="drift_detection",
    schedule=settings.schedules.drift_detection,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "prodcat",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(minutes=15),
    },
    doc_md=__doc__,
    tags=["prodcat", "monitoring"],
)
def drift_detection():
    @task
    def check_new_data(**context) -> dict:
        from prodcat.drift.check import check_window

        return check_window("new_data", context["dag_run"].run_after, context["run_id"])

    @task
    def check_live_traffic(**context) -> dict:
        from prodcat.drift.check import check_window

        return check_window("live_traffic", context["dag_run"].run_after, context["run_id"])

    @task.short_circuit
    def decide_retraining(new_data: dict, live_traffic: dict, **context) -> bool:
        from prodcat.drift.check import decide_retraining

        return decide_retraining(
            [new_data, live_traffic], context["dag_run"].run_after, context["run_id"]
        )

    trigger_retraining = TriggerDagRunOperator(
        task_id="trigger_ml_pipeline",
        trigger_dag_id="ml_pipeline",
        trigger_run_id="drift__{{ run_id }}",  # a retried task finds its own run and skips
        logical_date=None,
        conf={"reason": "drift"},
        skip_when_already_exists=True,
    )

    @task
    def purge_prediction_log(**context) -> int:
        from prodcat.drift.check import purge_prediction_log

        return purge_prediction_log(context["dag_run"].run_after)

    decide_retraining(check_new_data(), check_live_traffic()) >> trigger_retraining
    purge_prediction_log()


drift_detection()

"""
### ml_pipeline

Hourly, whenever prepare_data loads new rows (the `prodcat://products` asset), and whenever
another DAG triggers it (drift_detection does, with the parameter `reason` set to `drift`):
decides whether to retrain, and if so trains a challenger, evaluates it, gates it and
promotes it.

Nothing is trained before the evaluation set exists and `PRODCAT_TRAINING__MIN_ROWS` (4,000)
labelled rows are in. Then retraining happens when there is no champion, when a run is
triggered with a reason (drift), when the champion's weighted F1 on the rows ingested after
its training snapshot falls below `PRODCAT_TRAINING__F1_THRESHOLD` (0.7), or when that
backlog reaches `PRODCAT_TRAINING__BACKLOG_THRESHOLD` rows (10,000), counting the corrections
sent through `POST /feedback`. Otherwise the run skips training and logs why. Either way the
run ends in success. A version that clears the floor without beating the champion gets the
`challenger` alias: the API scores a share of live traffic with it, in shadow.

Set the parameter `rollback` to true to move the `champion` alias back to `previous` instead.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from prodcat.config import PRODUCTS_ASSET, get_settings

settings = get_settings()


@dag(
    dag_id="ml_pipeline",
    # Hourly, and as soon as prepare_data loads new rows: the first champion comes without delay.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.schedules.ml_pipeline, timezone="UTC"),
        assets=[Asset(PRODUCTS_ASSET)],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "prodcat",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "rollback": Param(False, type="boolean", description="Roll the champion back."),
        "reason": Param(
            None,
            type=["null", "string"],
            description="Why this run was asked for (drift_detection sends 'drift'): "
            "it then trains even when the champion looks healthy.",
        ),
    },
    doc_md=__doc__,
    tags=["prodcat", "ml"],
)
def ml_pipeline():
    @task.branch
    def check_retraining(**context) -> str:
        from prodcat.training.steps import choose_branch

        params = context["params"]
        return choose_branch(rollback=params["rollback"], reason=params.get("reason"))

    @task
    def rollback(**context) -> str:
        from prodcat.training.registry import rollback_champion

        return rollback_champion(run_key=context["run_id"])

    @task
    def skip_training() -> None:
        """Nothing to do: the champion is healthy and the backlog small (reason in the log)."""

    @task
    def train(**context) -> dict:
        from prodcat.training.steps import train_challenger

        return train_challenger(context.get("logical_date"), run_key=context["run_id"])

    @task
    def evaluate(trained: dict) -> str:
        from prodcat.training.steps import evaluate_challenger

        evaluate_challenger(trained["run_id"], trained["version"])
        return trained["version"]

    @task
    def gate(version: str) -> dict:
        from prodcat.training.steps import gate_version

        return gate_version(version)

    @task
    def promote(decision: dict) -> str | None:
        from prodcat.training.steps import promote_if_approved

        return promote_if_approved(decision)

    @task(trigger_rule="none_failed_min_one_success")
    def end() -> None:
        """Joins the branches, so the run succeeds whichever one ran."""

    trained = train()
    promoted = promote(gate(evaluate(trained)))
    skipped, rolled_back = skip_training(), rollback()
    check_retraining() >> [trained, skipped, rolled_back]
    [promoted, skipped, rolled_back] >> end()


ml_pipeline()

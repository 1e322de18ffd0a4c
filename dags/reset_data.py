"""
### reset_data

Starts over (manual only). Empties prodcat's tables and its images bucket, and only those;
carves a seeded, stratified evaluation set (`PRODCAT_DATA__EVAL_SIZE` rows) that training never
sees; and rewinds the stream to the start of the source.

Trigger it with the parameter `confirm` set to `true`; without it the run fails and deletes
nothing. Trained models in MLflow are kept.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="reset_data",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "prodcat",
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "confirm": Param(
            False, type="boolean", description="Must be true: this deletes all ingested data."
        )
    },
    doc_md=__doc__,
    tags=["prodcat", "data"],
)
def reset_data():
    @task
    def reset(**context) -> dict:
        from prodcat.data.reset import reset_data

        return reset_data(confirm=context["params"]["confirm"]).as_dict()

    reset()


reset_data()

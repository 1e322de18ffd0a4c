"""
### prepare_data

Every 15 minutes, loads the next batch of labelled product listings (2,000 rows by default,
`PRODCAT_DATA__BATCH_SIZE`) from the configured dataset into PostgreSQL, and their images into
the S3 images bucket. Bad rows land in `rejected_rows` with their reason. With
`PRODCAT_DATA__CATCH_UP=true` (the quick start), a run loads every batch left.

The first run on an empty dataset first holds out the evaluation set, in the same transaction,
so no model can ever train on it.

Exactly once: re-running a run is a no-op; overlapping runs queue on a row lock. When the
source is exhausted the run succeeds with zero rows. When it loaded rows, it updates the
`prodcat://products` asset, which runs `ml_pipeline`. Then it reports the retraining backlog.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

from prodcat.config import PRODUCTS_ASSET, get_settings

settings = get_settings()


@dag(
    dag_id="prepare_data",
    schedule=settings.schedules.prepare_data,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "prodcat",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    doc_md=__doc__,
    tags=["prodcat", "data"],
)
def prepare_data():
    @task
    def ingest_batch(**context) -> dict:
        from prodcat.data.ingest import ingest_pending

        return ingest_pending(context["run_id"], context.get("logical_date"))

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def loaded_rows(batch: dict) -> bool:
        return batch["rows_accepted"] > 0

    @task(outlets=[Asset(PRODUCTS_ASSET)])
    def announce_new_rows() -> None:
        """Updates the products asset: ml_pipeline runs on it."""

    @task
    def report_backlog(batch: dict) -> int:
        from prodcat.data.backlog import report_backlog

        return report_backlog()

    batch = ingest_batch()
    loaded_rows(batch) >> announce_new_rows()
    report_backlog(batch)


prepare_data()

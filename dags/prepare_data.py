"""
### prepare_data

Every 15 minutes, loads the next batch of labelled product listings (2,000 rows by default,
`PRODCAT_DATA__BATCH_SIZE`) from the configured dataset into PostgreSQL, and their images into
the S3 images bucket. Bad rows land in `rejected_rows` with their reason.

Exactly once: re-running a run is a no-op; overlapping runs queue on a row lock. When the
source is exhausted the run succeeds with zero rows. Then it reports the retraining backlog.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from prodcat.config import get_settings

settings = get_settings()


@dag(
    dag_id="prepare_data",
    schedule=settings.schedules.prepare_data,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "prodcat", "retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
    tags=["prodcat", "data"],
)
def prepare_data():
    @task
    def ingest_batch(**context) -> dict:
        from prodcat.data.ingest import ingest_next_batch

        result = ingest_next_batch(context["run_id"], context.get("logical_date"))
        return result.as_dict()

    @task
    def report_backlog(batch: dict) -> int:
        from prodcat.data.backlog import report_backlog

        return report_backlog()

    report_backlog(ingest_batch())


prepare_data()

"""
### batch_predict

Nightly (`PRODCAT_SCHEDULES__BATCH_PREDICT`), the champion categorises every listing awaiting
a category (ingested without a label, not yet corrected) that it has not scored yet.

Each chunk of `PRODCAT_BATCH_PREDICT__CHUNK_ROWS` listings is read, scored and written to
`batch_predictions` (category, confidence, top 3, model version) with COPY, in its own
transaction; answers under `PRODCAT_REVIEW__CONFIDENCE_THRESHOLD` go to the review queue
(`GET /review`). A rerun, or a retry after a crash, scores only what the champion has not:
a new champion scores everything again under its own version. Progress goes to the task log,
figures to StatsD (`prodcat_batch_predict_*`).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from prodcat.config import get_settings

settings = get_settings()


@dag(
    dag_id="batch_predict",
    schedule=settings.schedules.batch_predict,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "prodcat",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
    doc_md=__doc__,
    tags=["prodcat", "serving"],
)
def batch_predict():
    @task
    def score_listings(**context) -> dict:
        from prodcat.operations.batch_predict import score_listings

        return score_listings(context["dag_run"].run_after)

    score_listings()


batch_predict()

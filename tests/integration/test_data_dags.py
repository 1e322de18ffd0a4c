"""The data DAGs run for real with dag.test(): Airflow's metadata DB, our PostgreSQL and S3."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from sqlalchemy import text

from prodcat.data.dataset import load_dataset_spec
from prodcat.db import get_engine

pytestmark = pytest.mark.integration
DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dags(stack) -> dict:
    return DagBag(dag_folder=str(DAGS)).dags


def count(settings, sql: str) -> int:
    with get_engine(settings).connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_reset_then_several_prepare_data_runs_match_the_source(dags, settings):
    reset_run = dags["reset_data"].test(run_conf={"confirm": True})
    assert reset_run.state == "success"
    eval_rows = count(settings, "select count(*) from evaluation_set")
    assert eval_rows == settings.data.eval_size

    start = pendulum.datetime(2026, 11, 1, tz="UTC")
    for i in range(3):
        run = dags["prepare_data"].test(logical_date=start.add(minutes=15 * i))
        assert run.state == "success"

    batch = settings.data.batch_size
    assert count(settings, "select count(*) from ingestion_batches where status = 'succeeded'") == 3
    loaded = count(settings, "select count(*) from products") + count(
        settings, "select count(*) from rejected_rows"
    )
    assert loaded == 3 * batch

    # The rows in PostgreSQL are exactly the source's first rows, minus the evaluation set.
    spec = load_dataset_spec(settings)
    source = pd.read_csv(
        settings.data.raw_dir / spec.features_file, dtype=str, keep_default_na=False
    )
    end = count(settings, "select next_row from ingestion_cursor")
    held_out = count(settings, f"select count(*) from evaluation_set where source_row < {end}")
    assert end - held_out == 3 * batch
    with get_engine(settings).connect() as conn:
        stored = conn.execute(text("select source_row, title, label_code from products")).all()
    for source_row, title, label in stored[:500]:
        assert source.loc[source_row, spec.columns.title].strip() == title
        assert source.loc[source_row, spec.columns.label] == label


def test_reset_data_refuses_without_confirmation(dags, settings):
    before = count(settings, "select count(*) from products")
    run = dags["reset_data"].test(run_conf={"confirm": False})
    assert run.state == "failed"
    assert count(settings, "select count(*) from products") == before

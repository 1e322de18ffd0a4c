"""Batch scoring throughput: the `winner` profile's champion scores a catalogue of listings
awaiting a category, as the batch_predict DAG's task does (the issue's target: at least
5,000 listings/s on 2 cores).

Starts the native stack in a fresh state directory with its ports moved by --port-offset,
ingests --rows unlabelled listings (real titles of designations.csv, sampled with new ids),
fits the winner configuration on the labelled development file and registers it as champion,
then runs prodcat.operations.batch_predict.score_listings in a child process (its own peak
memory) twice: the first run scores everything, the second must score nothing. Last, with
the predictions deleted, the batch_predict DAG runs through Airflow's REST API and its task's
duration is read back (model loading included).

Usage: python benchmarks/batch_predict.py [--rows 100000] [--port-offset 3300] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.pipeline_train import cli, configure  # noqa: E402

SCORE = """
import json, resource, time
from datetime import UTC, datetime
from prodcat.logging_setup import configure_logging
from prodcat.operations.batch_predict import score_listings
configure_logging("WARNING")
started = time.perf_counter()
totals = score_listings(datetime(2026, 12, 1, 2, tzinfo=UTC))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({**totals, "seconds": seconds, "peak_mib": peak, "worker_peak_mib": workers}))
"""


def write_catalogue(raw_dir: Path, folder: Path, rows: int) -> Path:
    """rows listings with new ids and no label, titles sampled from the development file."""
    source = pd.read_csv(raw_dir / "designations.csv", dtype=str, keep_default_na=False)
    sample = source.sample(rows, replace=True, random_state=7).reset_index(drop=True)
    catalogue = pd.DataFrame({"listing_id": [f"listing-{i:08d}" for i in range(rows)],
                              "designation": sample["designation"], "prdtypecode": ""})  # fmt: skip
    catalogue.to_csv(folder / "catalogue.csv", index=False)
    shutil.copy(raw_dir / "categories.csv", folder / "categories.csv")
    spec = {"name": "batch-bench", "features_file": "catalogue.csv", "unlabelled_rows": "keep",
            "columns": {"id": "listing_id", "title": "designation", "label": "prdtypecode"},
            "label_names": {"file": "categories.csv", "code_column": "prdtypecode",
                            "name_column": "name"}}  # fmt: skip
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return folder / "dataset.yaml"


def ingest_everything() -> tuple[int, float]:
    from prodcat.data.ingest import ingest_next_batch

    date, batches, started = datetime(2026, 1, 1, tzinfo=UTC), 0, time.perf_counter()
    while not ingest_next_batch(f"bench-{batches}", date).exhausted:
        batches += 1
    return batches, time.perf_counter() - started


def register_champion(raw_dir: Path) -> str:
    """The winner configuration fitted on the labelled development file, as champion."""
    import mlflow
    import mlflow.sklearn

    from prodcat.config import get_settings
    from prodcat.training.registry import CHAMPION, get_client, use_mlflow
    from prodcat.training.search import SearchResult, fit_best

    settings = get_settings()
    data = pd.read_csv(raw_dir / "designations.csv", dtype=str, keep_default_na=False)
    X = pd.DataFrame({"title": data["designation"], "description": ""})
    best = SearchResult("linear_svc", {"C": 0.5, "class_weight": "balanced"}, 0.0)
    model = fit_best(X, data["prdtypecode"], best, "winner")
    use_mlflow(settings)
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="batch-predict-bench"):
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle",
            registered_model_name=settings.mlflow.model_name,
        )  # fmt: skip
    version = str(info.registered_model_version)
    get_client(settings).set_registered_model_alias(settings.mlflow.model_name, CHAMPION, version)
    return version


def score() -> dict:
    import json

    done = subprocess.run([sys.executable, "-c", SCORE], cwd=ROOT, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_dag() -> tuple[dict, float]:
    """Delete the predictions, run batch_predict through Airflow; its result and duration."""
    from prodcat.config import get_settings
    from prodcat.db import get_engine
    from tests.e2e.platform import Airflow

    settings = get_settings()
    airflow = Airflow(settings)
    # Unpausing starts the latest scheduled run (it finds everything scored): let it end first.
    airflow.patch("/dags/batch_predict", {"is_paused": False})
    time.sleep(10)
    for run in airflow.runs("batch_predict"):
        airflow.wait_for_run("batch_predict", run["dag_run_id"], timeout=1800)
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql("delete from review_queue")
        conn.exec_driver_sql("delete from batch_predictions")
    run_id = airflow.trigger("batch_predict", {})
    airflow.wait_for_run("batch_predict", run_id, timeout=1800)
    task = f"/dags/batch_predict/dagRuns/{run_id}/taskInstances/score_listings"
    result = airflow.get(f"{task}/xcomEntries/return_value")["value"]
    return result, airflow.get(task)["duration"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--port-offset", type=int, default=3300)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="prodcat-batch-bench-"))
    state.chmod(0o755)
    configure(args.port_offset, state)
    from prodcat.config import Settings

    raw_dir = Settings().data.raw_dir.resolve()
    os.environ.update({"PRODCAT_DATA__DATASET": str(write_catalogue(raw_dir, state, args.rows)),
                       "PRODCAT_DATA__RAW_DIR": str(state), "PRODCAT_DATA__EVAL_SIZE": "0",
                       "PRODCAT_DATA__BATCH_SIZE": "50000",
                       "PRODCAT_MLFLOW__MODEL_NAME": "prodcat-batch-bench"})  # fmt: skip
    try:
        cli("stack", "up")
        batches, seconds = ingest_everything()
        print(f"ingested {args.rows:,} listings in {batches} batches, {seconds:.1f} s")
        print(f"champion: version {register_champion(raw_dir)} (winner profile)", flush=True)
        first, again = score(), score()
        rate = first["scored"] / first["seconds"]
        print(f"first run: {first['scored']:,} scored in {first['seconds']:.1f} s = "
              f"{rate:,.0f} listings/s (target >= 5,000), {first['queued_for_review']:,} to "
              f"review, peak RSS {first['peak_mib']:.0f} MiB (largest worker "
              f"{first['worker_peak_mib']:.0f} MiB, sharing the model's pages)")  # fmt: skip
        print(f"rerun: {again['scored']} scored in {again['seconds']:.1f} s (idempotent)")
        result, seconds = run_dag()
        print(
            f"through Airflow: the score_listings task scored {result['scored']:,} in "
            f"{seconds:.1f} s, model loading included ({result['scored'] / seconds:,.0f}/s)"
        )
    finally:
        if not args.keep:
            cli("stack", "down")
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()

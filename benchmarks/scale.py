"""Ingestion at catalogue scale: a cost per batch that does not grow with the position in the
source (issue targets: the last batch within 1.5x the first; 1M rows in at most 10 minutes).

For each size in --rows, generates a catalogue from designations.csv (rows sampled with
replacement, each title perturbed with words of another title and a number, new ids, so the
vocabulary stays realistic), then in child processes (each its own peak memory) runs
reset_data (which carves the evaluation set) and ingests every batch, and prints reset_data's
duration and peak memory, the first and last batch times and rows/s over the whole file.
Runs its own PostgreSQL and S3 (ports moved by --port-offset, a fresh state directory).

With --train-rows, trains at each size as ml_pipeline's train task does (issue targets: the
full retrain at 1M rows in at most 30 minutes with peak memory at most 8 GB; at most 400 MB
resident per API worker): ingests a generated catalogue of that size, then in child processes
runs the search on its PRODCAT_TRAINING__SEARCH_ROWS sample and the refit on every row, each
printing its time and peak memory, the model's size and feature count; then loads the model as
an API worker does and prints the worker's resident memory before and after loading it and
after a few hundred predictions.

Usage: python benchmarks/scale.py [--rows 100000 1000000] [--batch-size 20000]
                                  [--train-rows 25000 100000 1000000] [--profile full]
       python benchmarks/scale.py --serve-model MODEL_DIR   (the API worker figures alone)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.pipeline_train import cli, configure  # noqa: E402

STEP = """
import json, resource, sys, time
from datetime import UTC, datetime
from prodcat.logging_setup import configure_logging
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
configure_logging("WARNING")
started = time.perf_counter()
if sys.argv[1] == "reset":
    result = reset_data(confirm=True).as_dict()
else:
    times, rows, date = [], 0, datetime(2026, 1, 1, tzinfo=UTC)
    while True:
        t0 = time.perf_counter()
        batch = ingest_next_batch(f"scale-{len(times)}", date)
        if batch.exhausted:
            break
        times.append(time.perf_counter() - t0)
        rows += batch.rows_read
    result = {"batch_seconds": times, "rows": rows}
result |= {"seconds": time.perf_counter() - started,
           "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
print(json.dumps(result))
"""


TRAIN = """
import json, resource, sys, time
import mlflow.sklearn
from sklearn.metrics import f1_score
from prodcat.config import Settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.data.training_set import load_evaluation_set
from prodcat.logging_setup import configure_logging
from prodcat.training.features import count_features
from prodcat.training.search import SearchResult, search_candidates
from prodcat.training.steps import load_training_rows, measure_model_size
from prodcat.training.stream import refit_winner, sample_rows
configure_logging("INFO")
settings = Settings()
profile, task = settings.training.profile, json.loads(sys.argv[1])
started = time.perf_counter()
data = load_training_rows(settings, load_dataset_spec(settings).name)
X, y = data[["title", "description"]], data["label_code"]
del data
loaded = time.perf_counter()
sample = sample_rows(y, settings.training.search_rows)
result = {"rows": len(X), "search_rows": len(sample), "load_seconds": loaded - started}
if task["step"] == "search":
    search = search_candidates(X.iloc[sample], y.iloc[sample], profile)
    result["seconds"] = time.perf_counter() - loaded
    result["search"] = {"best_name": search.best_name, "best_params": search.best_params,
                        "best_score": search.best_score, "rows": search.rows}
else:
    search = SearchResult(**task["search"])
    model = refit_winner(X, y, search, profile, sample)
    result["seconds"] = time.perf_counter() - loaded
    X_eval, y_eval = load_evaluation_set(settings, load_dataset_spec(settings).name)
    result |= {"model_size_bytes": measure_model_size(model), "features": count_features(model),
               "eval_f1": f1_score(y_eval, model.predict(X_eval), average="weighted")}
    mlflow.sklearn.save_model(model, task["model_dir"], serialization_format="cloudpickle")
result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""

# An API worker's steps: the app's modules, the model loaded and wrapped as model_store does,
# then requests of one item and batches through predict_items, as the routes send them.
SERVE = """
import json, sys
from prodcat.serving.server import skip_unused_imports
skip_unused_imports()  # as run_worker does, before the app is imported
import pandas as pd
import mlflow.sklearn
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel, freeze_heap
from prodcat.serving.predictor import predict_items
from prodcat.serving.schemas import PredictRequest

def rss_mib(field="VmRSS", source="/proc/self/status"):
    lines = open(source).read().split("\\n")
    return sum(int(l.split()[1]) for l in lines if l.startswith(field + ":")) / 1024

def unique_mib():  # resident pages no other process shares: what each more worker costs
    return sum(rss_mib(f, "/proc/self/smaps_rollup") for f in ("Private_Clean", "Private_Dirty"))

model_dir, titles_file = sys.argv[1], sys.argv[2]
result = {"before_load_mib": rss_mib()}
loaded = LoadedModel(mlflow.sklearn.load_model(model_dir), "bench", "local-copy")
freeze_heap()
result["after_load_mib"] = rss_mib()
titles = pd.read_csv(titles_file, dtype=str, keep_default_na=False)["designation"].tolist()
requests, sizes = 0, [1] * 300 + [64] * 10 + [1000]
for size in sizes:
    items = [PredictRequest(title=t) for t in titles[requests : requests + size]]
    docs = [loaded.cleaner.compose(*loaded.cleaner.clean_fields(i.title, "")) for i in items]
    predict_items(loaded, docs, items, [3] * len(items), explain=[size == 1] * len(items))
    requests += size
result |= {"requests": len(sizes), "items": requests, "after_predictions_mib": rss_mib(),
           "unique_mib": unique_mib(), "peak_mib": rss_mib("VmHWM")}
print(json.dumps(result))
"""


def write_catalogue(raw_dir: Path, folder: Path, rows: int) -> Path:
    """rows listings made from the development file's, perturbed; the dataset description."""
    source = pd.read_csv(raw_dir / "designations.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(7)
    picked = rng.integers(0, len(source), rows)
    donors = source["designation"].to_numpy()[rng.integers(0, len(source), rows)]
    titles = [f"{title} {' '.join(donor.split()[:2])} {n}" for title, donor, n in
              zip(source["designation"].to_numpy()[picked], donors,
                  rng.integers(1, 10_000, rows), strict=True)]  # fmt: skip
    pd.DataFrame({"sku": [f"sku-{i:08d}" for i in range(rows)], "designation": titles,
                  "prdtypecode": source["prdtypecode"].to_numpy()[picked]}).to_csv(
        folder / "catalogue.csv", index=False)  # fmt: skip
    shutil.copy(raw_dir / "categories.csv", folder / "categories.csv")
    spec = {"name": f"scale-{rows}", "features_file": "catalogue.csv",
            "columns": {"id": "sku", "title": "designation", "label": "prdtypecode"},
            "label_names": {"file": "categories.csv", "code_column": "prdtypecode",
                            "name_column": "name"}}  # fmt: skip
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return folder / "dataset.yaml"


def child(code: str, *args: str) -> dict:
    """The last line a child process printed, as JSON (its log goes to our stderr)."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, check=True,
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def step(name: str) -> dict:
    done = subprocess.run([sys.executable, "-c", STEP, name], cwd=ROOT, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(raw_dir: Path, state: Path, rows: int) -> None:
    folder = state / f"catalogue-{rows}"
    folder.mkdir()
    os.environ.update({"PRODCAT_DATA__DATASET": str(write_catalogue(raw_dir, folder, rows)),
                       "PRODCAT_DATA__RAW_DIR": str(folder)})  # fmt: skip
    reset = step("reset")
    print(f"{rows:,} rows: reset_data {reset['seconds']:.1f} s, peak {reset['peak_mib']:.0f} "
          f"MiB ({reset['eval_rows']:,} held out)", flush=True)  # fmt: skip
    ingest = step("ingest")
    times = ingest["batch_seconds"]
    print(f"  {len(times)} batches: first {times[0]:.2f} s, last {times[-1]:.2f} s "
          f"({times[-1] / times[0]:.2f}x, target <= 1.5x), median {np.median(times):.2f} s; "
          f"{ingest['rows']:,} rows in {ingest['seconds']:.0f} s = "
          f"{ingest['rows'] / ingest['seconds']:,.0f} rows/s; peak {ingest['peak_mib']:.0f} MiB",
          flush=True)  # fmt: skip


def measure_training(raw_dir: Path, state: Path, rows: int) -> None:
    """Ingest a catalogue of `rows` rows, then search, refit and serve as the platform would."""
    folder = state / f"training-{rows}"
    folder.mkdir()
    os.environ.update({"PRODCAT_DATA__DATASET": str(write_catalogue(raw_dir, folder, rows)),
                       "PRODCAT_DATA__RAW_DIR": str(folder)})  # fmt: skip
    step("reset")
    ingest = step("ingest")
    search = child(TRAIN, json.dumps({"step": "search"}))
    print(f"{rows:,} rows ({ingest['rows']:,} ingested in {ingest['seconds']:.0f} s), profile "
          f"{os.environ['PRODCAT_TRAINING__PROFILE']}: loading them took "
          f"{search['load_seconds']:.0f} s; search on {search['search_rows']:,} rows "
          f"{search['seconds']:.0f} s, peak {search['peak_mib']:,.0f} MiB "
          f"({search['search']['best_name']} wins)", flush=True)  # fmt: skip
    model_dir = folder / "model"
    refit = child(TRAIN, json.dumps({"step": "refit", "search": search["search"],
                                     "model_dir": str(model_dir)}))  # fmt: skip
    total = search["load_seconds"] + search["seconds"] + refit["load_seconds"] + refit["seconds"]
    print(f"  refit on {refit['rows']:,} rows {refit['seconds']:.0f} s, peak "
          f"{refit['peak_mib']:,.0f} MiB; whole retrain {total / 60:.1f} min (target at 1M: <= "
          f"30 min), peak {max(search['peak_mib'], refit['peak_mib']) / 1024:.2f} GiB (<= 8 GB)"
          f"; model {refit['model_size_bytes'] / 2**20:.0f} MiB pickled, "
          f"{refit['features']:,} features; weighted F1 {refit['eval_f1']:.4f} on the held-out "
          f"rows (generated like the rest: a sanity check, not a score)", flush=True)  # fmt: skip
    measure_serving(model_dir, raw_dir / "designations.csv")


def measure_serving(model_dir: Path, titles: Path) -> None:
    """Print an API worker's resident memory around loading the model and predicting."""
    serve = child(SERVE, str(model_dir), str(titles))
    print(f"  API worker: {serve['before_load_mib']:.0f} MiB before loading the model, "
          f"{serve['after_load_mib']:.0f} MiB after, {serve['after_predictions_mib']:.0f} MiB "
          f"after {serve['requests']} requests ({serve['items']:,} items; "
          f"{serve['unique_mib']:.0f} MiB of it unshared), peak {serve['peak_mib']:.0f} MiB "
          f"(target <= 400 MB)", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--port-offset", type=int, default=3500)
    parser.add_argument("--train-rows", type=int, nargs="*", default=[],
                        help="also train (and serve) at these catalogue sizes")  # fmt: skip
    parser.add_argument("--profile", default="full", help="training profile for --train-rows")
    parser.add_argument("--serve-model", type=Path, metavar="MODEL_DIR",
                        help="only measure an API worker serving this MLflow model")  # fmt: skip
    args = parser.parse_args()
    if args.serve_model:
        from prodcat.config import Settings

        measure_serving(args.serve_model, Settings().data.raw_dir.resolve() / "designations.csv")
        return
    state = Path(tempfile.mkdtemp(prefix="prodcat-scale-bench-"))
    state.chmod(0o755)
    configure(args.port_offset, state)
    from prodcat.config import Settings

    raw_dir = Settings().data.raw_dir.resolve()
    os.environ.update({"PRODCAT_DATA__BATCH_SIZE": str(args.batch_size),
                       "PRODCAT_DATA__EVAL_SIZE": "2000"})  # fmt: skip
    print(f"batch size {args.batch_size:,}", flush=True)
    try:
        cli("stack", "up", "postgres", "s3")
        for rows in args.rows:
            measure(raw_dir, state, rows)
        os.environ["PRODCAT_TRAINING__PROFILE"] = args.profile
        for rows in args.train_rows:
            measure_training(raw_dir, state, rows)
    finally:
        cli("stack", "down")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()

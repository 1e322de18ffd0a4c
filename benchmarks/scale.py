"""Ingestion at catalogue scale: a cost per batch that does not grow with the position in the
source (issue targets: the last batch within 1.5x the first; 1M rows in at most 10 minutes).

For each size in --rows, generates a catalogue from designations.csv (rows sampled with
replacement, each title perturbed with words of another title and a number, new ids, so the
vocabulary stays realistic), then in child processes (each its own peak memory) runs
reset_data (which carves the evaluation set) and ingests every batch, and prints reset_data's
duration and peak memory, the first and last batch times and rows/s over the whole file.
Runs its own PostgreSQL and S3 (ports moved by --port-offset, a fresh state directory).

Not measured here yet: search and refit at 25k/100k/1M rows, model size and API memory per
worker (issue 14's other figures).

Usage: python benchmarks/scale.py [--rows 100000 1000000] [--batch-size 20000]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--port-offset", type=int, default=3500)
    args = parser.parse_args()
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
    finally:
        cli("stack", "down")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()

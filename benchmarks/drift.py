"""A drift check end to end on 10,000 reference and 10,000 current rows, stage by stage.

What it does, through the package and the real services (own state directory, ports +700):
1. starts PostgreSQL, S3 and MLflow; ingests the first 6 batches of the designations file
   (12,000 rows: the champion's snapshot), trains a champion with PRODCAT_TRAINING__PROFILE
   (default `winner`) and promotes it; then ingests the remaining batches (~12,000 rows:
   the new_data window);
2. logs 10,000 of those listings with the champion's predictions into prediction_log, as the
   API does (the live_traffic window);
3. runs `check_window` for both windows, twice: the first run of a champion also computes its
   reference outputs on the 2,000 held-out rows (then cached); the second is the steady state.
4. prints the seconds of each stage: loading the champion, its reference outputs, reading
   from PostgreSQL, the descriptors, Evidently, the HTML to S3 and the summary row.

Usage: python benchmarks/drift.py [--state DIR] [--keep]. With --state, a later run with the
same directory reuses its data and champion.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import port_overrides  # noqa: E402  (shares the port-shifting helper)

os.environ.update(port_overrides(700))
os.environ.setdefault("PRODCAT_TRAINING__PROFILE", "winner")
os.environ.update({"PRODCAT_STATSD__ENABLED": "false", "PRODCAT_DRIFT__MIN_ROWS": "1000"})

from prodcat.config import get_settings  # noqa: E402
from prodcat.logging_setup import configure_logging  # noqa: E402

SNAPSHOT_BATCHES, TRAFFIC_ROWS = 6, 10_000


def prepare(settings) -> None:
    """Data, a champion trained on the first batches, the later batches and logged traffic."""
    from prodcat.data.ingest import ingest_next_batch
    from prodcat.data.reset import reset_data
    from prodcat.training.steps import (
        evaluate_challenger,
        gate_version,
        promote_if_approved,
        train_challenger,
    )

    reset_data(confirm=True, settings=settings)
    for i in range(SNAPSHOT_BATCHES):
        ingest_next_batch(f"snapshot-{i}", settings=settings)
    started = time.perf_counter()
    trained = train_challenger(settings=settings)
    evaluate_challenger(trained["run_id"], trained["version"], settings)
    promote_if_approved(gate_version(trained["version"], settings), settings)
    print(f"champion trained ({settings.training.profile}) in {time.perf_counter() - started:.0f}s")
    i = SNAPSHOT_BATCHES
    while not ingest_next_batch(f"window-{i}", settings=settings).exhausted:
        i += 1
    log_traffic(settings, trained["version"])


def log_traffic(settings, version: str) -> None:
    """TRAFFIC_ROWS of the new listings, predicted by the champion, into prediction_log."""
    import io

    from prodcat.data.training_set import load_products
    from prodcat.db import get_engine
    from prodcat.serving.prediction_log import COPY_SQL, PredictionRecord
    from prodcat.training.registry import get_champion, get_snapshot_batch, load_version

    after = get_snapshot_batch(get_champion(settings))  # the listings the champion never saw
    rows = load_products(settings, "rakuten-designations", after).head(TRAFFIC_ROWS)
    model = load_version(version, settings)
    probabilities = model.predict_proba(rows[["title", "description"]])
    now = datetime.now(UTC)
    lines = [
        PredictionRecord.of(
            now, version, str(model.classes_[p.argmax()]), float(p.max()), t, d, keep_text=True
        ).copy_line()
        for p, t, d in zip(probabilities, rows["title"], rows["description"], strict=True)
    ]
    connection = get_engine(settings).raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.copy_expert(COPY_SQL, io.StringIO("".join(lines)))
        connection.commit()
    finally:
        connection.close()


def run_checks(settings, label: str) -> None:
    from prodcat.db import get_engine
    from prodcat.drift.check import check_window

    with get_engine(settings).begin() as conn:  # no earlier check: both windows are whole
        conn.exec_driver_sql("delete from drift_reports")
    end = datetime.now(UTC) + timedelta(minutes=1)
    for window in ("new_data", "live_traffic"):
        started = time.perf_counter()
        result = check_window(window, end, f"bench-{label}-{time.time_ns()}", settings)
        total = time.perf_counter() - started
        stages = "  ".join(f"{k} {v:.2f}" for k, v in result["seconds"].items())
        print(f"{label:<7} {window:<13} {result['status']:<9} reference {result['reference_rows']}"
              f" current {result['current_rows']}  total {total:5.2f}s  |  {stages}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, help="state directory to create or reuse")
    parser.add_argument("--keep", action="store_true", help="leave the services running")
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="prodcat-drift-bench-"))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # PostgreSQL runs as 'postgres' under root and must traverse it
    reuse = (state / "prepared").exists()
    os.environ["PRODCAT_STATE_DIR"] = str(state.resolve())
    get_settings.cache_clear()
    configure_logging("WARNING")
    from prodcat.stack import Stack

    settings = get_settings()
    stack = Stack(settings, ROOT)
    stack.up(["postgres", "s3", "mlflow"])
    try:
        if not reuse:
            prepare(settings)
            (state / "prepared").touch()
        run_checks(settings, "first")
        run_checks(settings, "steady")
    finally:
        if not args.keep:
            stack.down()  # its services, then its own supervisord


if __name__ == "__main__":
    main()

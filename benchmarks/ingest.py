"""Ingestion speed against the real PostgreSQL and S3.

Prints rows/s for one 2,000-row batch (text rows, no images) and the time to stream the whole
shared designations file in batches. Needs the stack: it starts the test stack if it is down
(state in .state-test, ports +100) and leaves it as it found it.

Usage: python benchmarks/ingest.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
import tests.conftest  # noqa: E402,F401  (test stack settings: .state-test, ports +100)
from prodcat.config import get_settings  # noqa: E402
from prodcat.data.ingest import ingest_next_batch  # noqa: E402
from prodcat.data.reset import reset_data  # noqa: E402
from prodcat.stack import Stack  # noqa: E402


def stream_all(settings) -> tuple[float, int, int, list[float]]:
    """Reset, then load batches until the source is exhausted."""
    reset_data(confirm=True, settings=settings)
    started, batches, rows, per_batch = time.perf_counter(), 0, 0, []
    while True:
        t0 = time.perf_counter()
        result = ingest_next_batch(f"bench-{batches}", settings=settings)
        if result.exhausted:
            break
        per_batch.append(time.perf_counter() - t0)
        batches += 1
        rows += result.rows_read
    return time.perf_counter() - started, batches, rows, per_batch


def main() -> None:
    base = get_settings()
    settings = base.model_copy(
        update={"data": base.data.model_copy(update={"dataset": "rakuten-designations"})}
    )
    stack = Stack(settings, ROOT)
    was_up = all(s.healthy for s in stack.status(["postgres", "s3"]))
    stack.up(["postgres", "s3"])
    try:
        total, batches, rows, per_batch = stream_all(settings)
    finally:
        if not was_up:
            stack.down(["postgres", "s3"])
    first = per_batch[0]
    print(f"dataset: {settings.data.dataset}, batch size {settings.data.batch_size}")
    print(f"one 2,000-row batch (first): {first * 1000:7.1f} ms  = {2000 / first:8.0f} rows/s")
    print(f"median batch:                {statistics.median(per_batch) * 1000:7.1f} ms")
    print(f"slowest batch:               {max(per_batch) * 1000:7.1f} ms")
    print(
        f"whole file: {rows} rows in {batches} batches, {total:.2f} s ({rows / total:.0f} rows/s)"
    )


if __name__ == "__main__":
    main()

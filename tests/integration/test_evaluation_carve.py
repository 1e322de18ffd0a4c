"""The evaluation-set carve on a source of 100k long listings: it streams, never holding the
source whole, and what it stores is the drawn rows, whole, which ingestion then passes over."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import text

from prodcat.config import Settings
from prodcat.data import evaluation_set
from prodcat.data.dataset import iter_source, load_dataset_spec
from prodcat.data.ingest import ingest_pending
from prodcat.data.reset import reset_data
from prodcat.db import get_engine

pytestmark = pytest.mark.integration
ROWS, CHUNK, EVAL = 100_000, 2_000, 2_000
OVERLAP = """select count(*) from products
    where source_row in (select source_row from evaluation_set)
       or product_id in (select product_id from evaluation_set)"""
EVERY_ROW = """select (select count(*) from products) + (select count(*) from rejected_rows)
    + (select count(*) from evaluation_set)"""
WORDS = "lampe de chevet en bois massif avec abat-jour en lin et interrupteur au pied " * 40


@pytest.fixture(scope="module")
def long_listings(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """ROWS listings of 1,200-character descriptions, a few untitled, a few repeating an id
    from 30k rows earlier (another chunk)."""
    folder = tmp_path_factory.mktemp("long-listings")
    rng = np.random.default_rng(5)
    starts = rng.integers(0, 1000, ROWS)
    rows = pd.DataFrame({
        "sku": [f"sku-{i:07d}" for i in range(ROWS)],
        "name": [f"lampe {i} {WORDS[s:s + 40].strip()}" for i, s in enumerate(starts)],
        "text": [WORDS[s : s + 1200].strip() for s in starts],
        "cat": rng.choice(["10", "40", "50", "1280", "2583", "2705"], ROWS),
    })  # fmt: skip
    rows.loc[::101, "name"] = ""
    rows.loc[30_000::997, "sku"] = rows["sku"].shift(30_000)[30_000::997]
    rows.to_csv(folder / "listings.csv", index=False)
    columns = {"id": "sku", "title": "name", "description": "text", "label": "cat"}
    spec = {"name": "long-listings", "features_file": "listings.csv", "columns": columns}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return folder, rows


@pytest.fixture
def long_settings(settings, long_listings) -> Settings:
    folder, _ = long_listings
    data = {"raw_dir": folder, "dataset": str(folder / "dataset.yaml"), "eval_size": EVAL,
            "batch_size": 20_000, "catch_up": True}  # fmt: skip
    return settings.model_copy(update={"data": settings.data.model_copy(update=data)})


def query(settings: Settings, sql: str) -> list[tuple]:
    with get_engine(settings).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_the_carve_holds_a_chunk_of_the_source_at_a_time_never_all_of_it(
    long_settings, long_listings, monkeypatch
):
    folder, _ = long_listings
    held: list[int] = []  # rows of earlier chunks still held whenever the carve reads a chunk
    chunks: list[weakref.ref] = []

    def spying(*args, **kwargs):
        for chunk in iter_source(*args, **{**kwargs, "chunk_rows": CHUNK}):
            # Garbage in reference cycles (a pandas .str accessor and its Series) waits for
            # the collector, held by nobody: collect it, to see what the carve holds.
            gc.collect()
            held.append(sum(len(c) for c in (ref() for ref in chunks) if c is not None))
            chunks.append(weakref.ref(chunk))
            yield chunk

    monkeypatch.setattr(evaluation_set, "iter_source", spying)
    gc.freeze()  # what was there before the carve: each collection then skips it, faster
    tracemalloc.start()
    try:
        result = reset_data(confirm=True, settings=long_settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    assert (result.source_rows, result.eval_rows) == (ROWS, EVAL)
    assert len(held) >= ROWS // CHUNK  # the spy saw the whole source go by
    assert max(held) <= CHUNK  # the chunk read before, at most
    source_bytes = (folder / "listings.csv").stat().st_size
    assert peak < source_bytes / 4, f"peak {peak / 2**20:.0f} MiB for {source_bytes / 2**20:.0f}"


def test_the_held_out_rows_are_stored_whole_and_never_ingested(long_settings, long_listings):
    _, rows = long_listings
    reset_data(confirm=True, settings=long_settings)
    stored = pd.DataFrame(
        query(long_settings, "select source_row, product_id, title, description, label_code "
              "from evaluation_set order by source_row"),
        columns=["source_row", "sku", "name", "text", "cat"],
    )  # fmt: skip
    spec = load_dataset_spec(long_settings)
    drawn = evaluation_set.choose_held_out_rows(spec, long_settings, None).held_out
    assert list(stored["source_row"]) == list(drawn) and len(drawn) == EVAL
    expected = rows.loc[drawn, ["sku", "name", "text", "cat"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored.drop(columns="source_row"), expected)
    ingest_pending("carve-then-ingest", settings=long_settings)
    assert query(long_settings, OVERLAP) == [(0,)]
    assert query(long_settings, EVERY_ROW) == [(ROWS,)]  # once: loaded, refused or held out

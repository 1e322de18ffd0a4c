"""Ingestion against the real PostgreSQL and S3 of the test stack."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from prodcat.config import Settings
from prodcat.data import dataset as dataset_module
from prodcat.data import ingest
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.data.training_set import count_backlog, load_products
from prodcat.db import get_engine
from prodcat.db.schema import PRODCAT_TABLES
from prodcat.storage import get_s3_client

pytestmark = pytest.mark.integration
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "rakuten"


def with_data(settings: Settings, **data) -> Settings:
    return settings.model_copy(update={"data": settings.data.model_copy(update=data)})


def scalar(settings: Settings, sql: str, **params):
    with get_engine(settings).connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def rows(settings: Settings, sql: str, **params) -> list[tuple]:
    with get_engine(settings).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture
def designations(settings) -> Settings:
    s = with_data(settings, raw_dir=SHARED, dataset="rakuten-designations", batch_size=2000,
                  eval_size=1000)  # fmt: skip
    reset_data(confirm=True, settings=s)
    return s


@pytest.fixture
def sample(settings) -> Settings:
    s = with_data(settings, raw_dir=SHARED, dataset="rakuten-sample", batch_size=1000, eval_size=50)
    reset_data(confirm=True, settings=s)
    return s


def test_a_batch_loads_the_next_rows_and_its_record_adds_up(designations):
    first = ingest_next_batch("run-1", settings=designations)
    second = ingest_next_batch("run-2", settings=designations)
    assert first.start_row == 0 and second.start_row == first.end_row
    assert first.rows_read == 2000 and second.rows_read == 2000
    batches = rows(
        designations,
        "select rows_read, rows_accepted, rows_rejected, status from ingestion_batches order by id",
    )
    assert [b[3] for b in batches] == ["succeeded", "succeeded"]
    assert all(read == acc + rej for read, acc, rej, _ in batches)
    assert (
        scalar(designations, "select count(*) from products")
        + scalar(designations, "select count(*) from rejected_rows")
        == 4000
    )


def test_rerunning_a_batch_is_a_no_op(designations):
    first = ingest_next_batch("same-run", settings=designations)
    again = ingest_next_batch("same-run", settings=designations)
    assert again.already_loaded and again.batch_id == first.batch_id
    assert again.rows_accepted == first.rows_accepted
    assert scalar(designations, "select count(*) from ingestion_batches") == 1
    assert scalar(designations, "select next_row from ingestion_cursor") == first.end_row


def test_concurrent_runs_load_every_row_exactly_once(designations):
    s = with_data(designations, batch_size=700)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(4):
                ingest_next_batch(f"worker-{n}-{i}", settings=s)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    loaded = rows(
        s,
        "select source_row from products union all select source_row from rejected_rows",
    )
    source_rows = sorted(r[0] for r in loaded)
    assert len(source_rows) == 16 * 700 == len(set(source_rows))
    held_out = {r[0] for r in rows(s, "select source_row from evaluation_set")}
    end = scalar(s, "select next_row from ingestion_cursor")
    assert set(source_rows) == set(range(end)) - held_out  # no gap, no overlap
    ranges = sorted(rows(s, "select start_row, end_row from ingestion_batches"))
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_a_failure_halfway_leaves_no_partial_batch_and_the_rerun_completes(
    designations, monkeypatch
):
    original = ingest._insert_rejects

    def explode(*args, **kwargs):
        raise RuntimeError("injected failure after the products were inserted")

    monkeypatch.setattr(ingest, "_insert_rejects", explode)
    with pytest.raises(RuntimeError, match="injected"):
        ingest_next_batch("flaky-run", settings=designations)
    assert scalar(designations, "select count(*) from products") == 0
    assert scalar(designations, "select next_row from ingestion_cursor") == 0
    failed = rows(designations, "select status, error from ingestion_batches")
    assert failed == [("failed", "RuntimeError: injected failure after the products were inserted")]

    monkeypatch.setattr(ingest, "_insert_rejects", original)
    retry = ingest_next_batch("flaky-run", settings=designations)
    assert retry.rows_read == 2000 and not retry.already_loaded
    assert scalar(designations, "select count(*) from products") == retry.rows_accepted


def test_a_failed_image_upload_fails_the_batch_and_the_retry_loses_nothing(sample, monkeypatch):
    calls = {"n": 0}
    real_client = get_s3_client(sample)
    real_put = real_client.fput_object

    def flaky_put(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("injected S3 outage")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(real_client, "fput_object", flaky_put)
    monkeypatch.setattr(ingest, "get_s3_client", lambda settings: real_client)
    with pytest.raises(ConnectionError):
        ingest_next_batch("image-run", settings=sample)
    assert scalar(sample, "select count(*) from products") == 0

    monkeypatch.undo()
    done = ingest_next_batch("image-run", settings=sample)
    assert done.rows_with_image > 2
    assert scalar(sample, "select count(*) from products where image_key is not null") == (
        done.rows_with_image
    )


def test_images_land_in_the_bucket_with_their_content_type(sample):
    total = 0
    while not (batch := ingest_next_batch(f"img-{total}", settings=sample)).exhausted:
        total += batch.rows_with_image
    keys = [
        r[0] for r in rows(sample, "select image_key from products where image_key is not null")
    ]
    eval_images = scalar(sample, "select count(*) from evaluation_set where image_path is not null")
    assert len(keys) == total and total + eval_images == 15  # the 15 photos of the sample
    assert scalar(sample, "select count(*) from products where image_key is null") > 400
    client = get_s3_client(sample)
    for key in keys:
        stat = client.stat_object(sample.s3.images_bucket, key)
        assert stat.content_type == "image/jpeg"
        assert stat.size > 1000


def test_an_exhausted_source_succeeds_with_zero_rows(sample):
    while not ingest_next_batch(f"drain-{scalar(sample, 'select count(*) from ingestion_batches')}",
                                settings=sample).exhausted:  # fmt: skip
        pass
    batches = scalar(sample, "select count(*) from ingestion_batches")
    result = ingest_next_batch("after-the-end", settings=sample)
    assert result.exhausted and result.rows_read == 0 and result.batch_id is None
    assert scalar(sample, "select count(*) from ingestion_batches") == batches
    loaded = scalar(sample, "select count(*) from products") + scalar(
        sample, "select count(*) from rejected_rows"
    )
    assert loaded + scalar(sample, "select count(*) from evaluation_set") == 517


def write_bad_dataset(root: Path) -> Settings:
    """A small single-CSV dataset with one row per kind of defect."""
    (root / "images").mkdir(parents=True)
    shutil.copy(next((SHARED / "images").glob("*.jpg")), root / "images" / "p1.jpg")
    lines = [
        "sku,name,text,cat,picture",
        "p1,Good product,Fine description,10,p1.jpg",
        "p2,,no title here,10,",
        "p3,Unknown label,desc,999999,",
        "p4,Missing label,desc,,",
        f"p5,{'x' * 1200},too long a title,10,",
        "p1,Duplicate of p1,desc,10,",
        "p7,Another good one,<b>html</b> &eacute;,40,missing.jpg",
    ]
    data = ("\n".join(lines) + "\n").encode()
    data += b"p8,Broken \xff\xfe bytes,desc,10,\n"
    (root / "products.csv").write_bytes(data)
    (root / "labels.csv").write_text("code,label_name\n10,Books\n40,Games\n")
    (root / "bad.yaml").write_text(
        "name: bad-rows\nfeatures_file: products.csv\n"
        "columns: {id: sku, title: name, description: text, label: cat}\n"
        "image: {dir: images, column: picture}\n"
        "label_names: {file: labels.csv, code_column: code, name_column: label_name}\n"
    )
    return root


def test_bad_rows_land_in_rejects_with_their_reason(settings, tmp_path):
    root = write_bad_dataset(tmp_path)
    s = with_data(settings, raw_dir=root, dataset=str(root / "bad.yaml"), eval_size=1)
    with pytest.raises(ValueError, match="eval_size"):
        reset_data(confirm=True, settings=s)  # 2 valid rows cannot spare an evaluation set
    s = with_data(s, eval_size=0)
    reset_data(confirm=True, settings=s)
    result = ingest_next_batch("bad-rows", settings=s)
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (8, 2, 6)
    rejects = dict(rows(s, "select raw->>'sku', reason from rejected_rows"))
    assert rejects == {
        "p2": "empty_title",
        "p3": "unknown_label",
        "p4": "missing_label",
        "p5": "too_long",
        "p1": "duplicate_id",
        "p8": "bad_encoding",
    }
    raw = rows(s, "select raw->>'name', detail from rejected_rows where reason = 'bad_encoding'")
    assert raw[0][0].startswith("Broken \ufffd")
    accepted = dict(rows(s, "select product_id, coalesce(image_key, '') from products"))
    assert accepted == {"p1": "bad-rows/p1.jpg", "p7": ""}
    assert result.rows_with_image == 1 and result.rows_without_image == 1


AWKWARD = [  # what COPY's text format must escape: tab, newline, backslash, "\\N"
    ("a1", "Tab\there", "one\ntwo\r\nthree", "10"),
    ("a2", "Back\\slash", "\\N", "10"),
    ("a3", 'Quote "x" and, comma', "C:\\temp\\new", "10"),
    ("a4", "Plain", "", "40"),
    ("a5", "\\N", "tab\tin text", "40"),
    ("a6", "Plain again", "end\\", "40"),
    ("a7", "Tab\tunknown", "back\\slash", "99"),
]


def test_text_that_copy_must_escape_is_stored_as_read(settings, tmp_path):
    frame = pd.DataFrame(AWKWARD, columns=["sku", "name", "text", "cat"])
    frame.to_csv(tmp_path / "awkward.csv", index=False)
    (tmp_path / "labels.csv").write_text("code,label_name\n10,Books\n40,Games\n")
    (tmp_path / "awkward.yaml").write_text(
        "name: awkward\nfeatures_file: awkward.csv\n"
        "columns: {id: sku, title: name, description: text, label: cat}\n"
        "label_names: {file: labels.csv, code_column: code, name_column: label_name}\n"
    )
    s = with_data(settings, raw_dir=tmp_path, dataset=str(tmp_path / "awkward.yaml"),
                  eval_size=2)  # fmt: skip
    reset_data(confirm=True, settings=s)
    ingest_next_batch("awkward", settings=s)
    columns = "product_id, title, description, label_code"
    stored = rows(
        s, f"select {columns} from products union all select {columns} from evaluation_set"
    )
    assert sorted(stored) == [tuple(r) for r in frame[frame["cat"] != "99"].to_numpy()]
    assert scalar(s, "select count(*) from evaluation_set") == 2
    raw = rows(s, "select raw->>'name', raw->>'text', reason from rejected_rows")
    assert raw == [("Tab\tunknown", "back\\slash", "unknown_label")]


def test_the_evaluation_set_is_stratified_reproducible_and_never_trained_on(designations):
    first = rows(designations, "select source_row from evaluation_set order by 1")
    reset_data(confirm=True, settings=designations)
    assert rows(designations, "select source_row from evaluation_set order by 1") == first
    for i in range(3):
        ingest_next_batch(f"eval-{i}", settings=designations)
    overlap = scalar(
        designations,
        "select count(*) from products p join evaluation_set e "
        "on p.source_row = e.source_row or p.product_id = e.product_id",
    )
    assert overlap == 0
    source = pd.read_csv(SHARED / "designations.csv", dtype=str)
    held = pd.DataFrame(rows(designations, "select label_code from evaluation_set"), columns=["l"])
    expected = source["prdtypecode"].value_counts(normalize=True)
    observed = held["l"].value_counts(normalize=True).reindex(expected.index, fill_value=0)
    assert (observed - expected).abs().max() < 0.01
    assert len(held) == 1000


def test_reset_refuses_without_confirmation(designations):
    ingest_next_batch("before-refused-reset", settings=designations)
    with pytest.raises(ValueError, match="confirm=true"):
        reset_data(confirm=False, settings=designations)
    assert scalar(designations, "select count(*) from products") > 0


def test_backlog_counts_rows_after_a_snapshot(designations):
    first = ingest_next_batch("backlog-1", settings=designations)
    second = ingest_next_batch("backlog-2", settings=designations)
    assert count_backlog(None, designations) == first.rows_accepted + second.rows_accepted
    assert count_backlog(first.batch_id, designations) == second.rows_accepted
    assert count_backlog(second.batch_id, designations) == 0


def test_a_champion_trained_before_a_reset_sees_the_batches_loaded_after_it(designations):
    before = ingest_next_batch("before-reset", settings=designations)  # the champion's snapshot
    reset_data(confirm=True, settings=designations)
    after = ingest_next_batch("after-reset", settings=designations)
    assert after.batch_id > before.batch_id  # batch ids keep counting across the reset
    assert count_backlog(before.batch_id, designations) == after.rows_accepted > 0


def test_the_first_ingestion_of_an_empty_dataset_holds_out_the_evaluation_set_first(settings):
    s = with_data(settings, raw_dir=SHARED, dataset="rakuten-designations", batch_size=2000,
                  eval_size=1000)  # fmt: skip
    with get_engine(s).begin() as conn:  # an empty platform: no reset_data was ever run
        conn.exec_driver_sql(f"truncate {', '.join(t.name for t in PRODCAT_TABLES)}")
    batch = ingest_next_batch("first-ever", settings=s)
    held_out = rows(s, "select source_row, product_id from evaluation_set order by 1")
    assert len(held_out) == 1000 and batch.rows_read == 2000
    loaded = {r[0] for r in rows(s, "select product_id from products")}
    assert loaded and not loaded & {r[1] for r in held_out}
    assert ingest_next_batch("second", settings=s).rows_read == 2000  # carved once only
    assert scalar(s, "select count(*) from evaluation_set") == 1000
    reset_data(confirm=True, settings=s)  # the same carve as reset_data's
    assert rows(s, "select source_row, product_id from evaluation_set order by 1") == held_out


def test_training_reads_exclude_the_evaluation_set_even_if_a_row_got_into_products(designations):
    batch = ingest_next_batch("excluded", settings=designations)
    with get_engine(designations).begin() as conn:  # a held-out row in products, by any bug
        conn.exec_driver_sql(
            "insert into products (dataset, product_id, title, description, label_code, "
            "source_row, batch_id) select dataset, product_id, title, description, label_code, "
            "source_row, %s from evaluation_set limit 1",
            (batch.batch_id,),
        )
    products = load_products(designations, "rakuten-designations")
    held_out = {r[0] for r in rows(designations, "select product_id from evaluation_set")}
    assert len(products) == batch.rows_accepted and not set(products["product_id"]) & held_out


def test_a_late_batch_reads_only_its_own_rows_not_the_source_from_the_top(designations,
                                                                          monkeypatch):  # fmt: skip
    parsed: list[int] = []
    real = dataset_module.read_records

    def counting(path, spec, start_byte=None):
        for record in real(path, spec, start_byte):
            parsed[-1] += 1
            yield record

    monkeypatch.setattr(dataset_module, "read_records", counting)
    for k in range(6):
        parsed.append(0)
        ingest_next_batch(f"flat-{k}", settings=designations)
    # The first ingestion also carves the evaluation set from the whole file; from then on a
    # batch parses its 2,000 rows, plus at most one more chunk for the held-out rows among them
    # (reading from the top, the sixth would parse at least 10,000).
    assert all(count <= 2 * 2000 for count in parsed[1:]), parsed
    assert scalar(designations, "select next_byte from ingestion_cursor "
                  "where dataset = 'rakuten-designations'") > 0  # fmt: skip

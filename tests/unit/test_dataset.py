import itertools
from pathlib import Path

import pandas as pd
import pytest

from prodcat.config import Settings
from prodcat.data import dataset as dataset_module
from prodcat.data.dataset import (
    DatasetSpec,
    SourcePosition,
    derive_id,
    iter_source,
    load_dataset_spec,
    read_label_names,
    read_records,
)
from prodcat.data.validate import Limits, Reason, find_rejections

SHARED = Settings().data.raw_dir  # PRODCAT_DATA__RAW_DIR, as CI sets it


def spec_named(name: str) -> DatasetSpec:
    return load_dataset_spec(Settings(_env_file=None, data={"dataset": name}))


def read_all(spec: DatasetSpec, raw_dir: Path = SHARED, start: int = 0) -> pd.DataFrame:
    return pd.concat(list(iter_source(spec, raw_dir, start)))


def test_single_csv_dataset_derives_stable_ids():
    spec = spec_named("rakuten-designations")
    first, second = read_all(spec), read_all(spec)
    assert len(first) == 25909
    assert first["product_id"].equals(second["product_id"])
    assert first["product_id"].is_unique
    assert (first["description"] == "").all() and first["image_path"].isna().all()


def test_rakuten_pair_joins_labels_by_index_and_finds_images():
    spec = spec_named("rakuten-sample")
    rows = read_all(spec)
    labels = pd.read_csv(SHARED / "Y_sample.csv", index_col=0, dtype=str)
    assert len(rows) == 517
    assert list(rows["label"]) == list(labels["prdtypecode"])
    assert rows["image_path"].notna().sum() == 15
    assert rows.loc[0, "product_id"] == "3804725264"


def test_reading_from_a_row_resumes_in_order():
    spec = spec_named("rakuten-designations")
    tail = read_all(spec, start=25900)
    assert list(tail["source_row"]) == list(range(25900, 25909))


def test_label_names_are_read_from_the_configured_file():
    names = read_label_names(spec_named("rakuten-sample"), SHARED)
    assert len(names) == 27 and names["10"].startswith("Livres")


def test_unknown_dataset_lists_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match="rakuten-designations"):
        spec_named("nope")


def test_a_spec_needs_exactly_one_image_source():
    with pytest.raises(ValueError, match="exactly one"):
        DatasetSpec.model_validate(
            {"name": "x", "features_file": "f.csv", "columns": {"title": "t", "label": "l"},
             "image": {"dir": "i"}}
        )  # fmt: skip


def test_derived_id_depends_on_content_only():
    assert derive_id("a", "b", "1") == derive_id("a", "b", "1")
    assert derive_id("a", "b", "1") != derive_id("a", "b", "2")


def frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"product_id": [str(i) for i in range(n)], "title": ["t"] * n,
            "description": [""] * n, "label": ["10"] * n}  # fmt: skip
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"title": ["  "[:0]]}, Reason.EMPTY_TITLE),
        ({"label": [""]}, Reason.MISSING_LABEL),
        ({"label": ["77"]}, Reason.UNKNOWN_LABEL),
        ({"title": ["x" * 11]}, Reason.TOO_LONG),
        ({"description": ["y" * 21]}, Reason.TOO_LONG),
        ({"title": ["bad \udcff byte"]}, Reason.BAD_ENCODING),
        ({"title": ["replacement \ufffd"]}, Reason.BAD_ENCODING),
        ({"description": ["nul \x00"]}, Reason.BAD_ENCODING),
        ({"product_id": ["seen"]}, Reason.DUPLICATE_ID),
    ],
)
def test_each_defect_is_rejected_with_its_reason(columns, reason):
    reasons = find_rejections(frame(**columns), Limits(10, 20), {"10"}, existing_ids={"seen"})
    assert list(reasons) == [reason]


def test_good_rows_pass_and_repeats_within_a_batch_keep_the_first():
    rows = frame(product_id=["a", "b", "a"], description=["<b>html</b> &eacute;", "", "x"])
    assert list(find_rejections(rows, Limits(10, 20), None, set())) == ["", "", "duplicate_id"]


def test_a_rejected_row_does_not_claim_its_id():
    rows = frame(product_id=["a", "a"], title=["", "ok"])
    assert list(find_rejections(rows, Limits(10, 20), None, set())) == ["empty_title", ""]


def test_reading_from_a_rows_byte_position_gives_the_same_rows_as_from_the_top():
    # Both Rakuten layouts: one file, and features with labels in a second file.
    for name in ("rakuten-designations", "rakuten-sample"):
        spec = spec_named(name)
        whole = read_all(spec)
        for row in (1, 137, len(whole) - 3):
            before = whole.iloc[row - 1]
            label_byte = before["label_end_byte"]
            position = SourcePosition(row, int(before["end_byte"]),
                                      None if label_byte is None else int(label_byte))  # fmt: skip
            resumed = pd.concat(list(iter_source(spec, SHARED, row, position, chunk_rows=50)))
            columns = ["source_row", "product_id", "title", "label", "end_byte"]
            assert resumed[columns].reset_index(drop=True).equals(
                whole.iloc[row:][columns].reset_index(drop=True)), (name, row)  # fmt: skip


def test_a_read_of_some_rows_normalises_only_those(monkeypatch):
    normalised: list[int] = []
    real = dataset_module.normalise

    def counting(raw, spec, raw_dir):
        normalised.append(len(raw))
        return real(raw, spec, raw_dir)

    for name in ("rakuten-designations", "rakuten-sample"):
        whole, wanted = read_all(spec_named(name)), [2, 51, 52, 260]
        monkeypatch.setattr(dataset_module, "normalise", counting)
        some = pd.concat(list(iter_source(spec_named(name), SHARED, chunk_rows=50,
                                          only_rows=wanted)))  # fmt: skip
        monkeypatch.undo()
        columns = ["source_row", "product_id", "title", "label", "end_byte", "label_end_byte"]
        assert some[columns].equals(whole.loc[wanted, columns]), name
        assert sum(normalised) == 4, name
        normalised.clear()


def test_byte_positions_are_exact_across_awkward_records(tmp_path: Path):
    # A quoted newline, CRLF endings, an undecodable byte, a malformed record, non-ASCII text.
    raw = (
        (
            'designation,prdtypecode\r\n"Lampe\nde bureau",10\r\nCafé crème,40\r\n'
            '"unbalanced,40\r\n'
        ).encode()
        + b"Bo\xeete,10\r\n"
        + "Théière,2583\r\n".encode()
    )
    (tmp_path / "rows.csv").write_bytes(raw)
    spec = DatasetSpec.model_validate({"name": "awkward", "features_file": "rows.csv",
                                       "columns": {"title": "designation",
                                                   "label": "prdtypecode"}})  # fmt: skip
    records = list(read_records(tmp_path / "rows.csv", spec))
    assert records[-1][3] == len(raw)
    for (_, _, _, end), following in itertools.pairwise(records):
        assert next(read_records(tmp_path / "rows.csv", spec, end)) == following

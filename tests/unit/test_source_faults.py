"""Sources as shops really export them: malformed records, empty or misaligned files, and
image names that point outside the image folder. Nothing may stop ingestion for good."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from prodcat.data.dataset import DatasetSpec, iter_source
from prodcat.data.validate import Limits, Reason, describe_rejection, find_rejections

LIMITS = Limits(1000, 10_000)


def single_file(tmp_path: Path, text: str, **extra) -> DatasetSpec:
    (tmp_path / "listings.csv").write_text(text, encoding="utf-8")
    return DatasetSpec(name="shop", features_file="listings.csv",
                       columns={"id": "sku", "title": "name", "label": "cat"}, **extra)  # fmt: skip


def read_all(spec: DatasetSpec, raw_dir: Path, start: int = 0) -> pd.DataFrame:
    return pd.concat(list(iter_source(spec, raw_dir, start)))


def test_a_record_with_a_field_too_many_or_an_open_quote_is_rejected_whole(tmp_path):
    text = ('sku,name,cat\n1,Lampe,10\n2,Chaise,10,extra\n3,Table,40\n'
            '4,"Robe rouge,10\n5,Sac,40\n')  # fmt: skip
    rows = read_all(single_file(tmp_path, text), tmp_path)
    assert list(rows["source_row"]) == list(range(len(rows)))
    reasons = find_rejections(rows, LIMITS, None, set())
    assert list(reasons[:3]) == ["", Reason.MALFORMED_ROW, ""]
    assert rows["raw"].iloc[1] == {"line": "2,Chaise,10,extra\n"}
    # The open quote swallows what follows it: one malformed record, nothing lost silently.
    assert list(reasons[3:]) == [Reason.MALFORMED_ROW]
    assert rows["raw"].iloc[3]["line"] == '4,"Robe rouge,10\n5,Sac,40\n'
    assert "could not split" in describe_rejection(rows.iloc[1], Reason.MALFORMED_ROW, LIMITS)


def test_reading_from_a_row_after_a_malformed_one_counts_it(tmp_path):
    spec = single_file(tmp_path, "sku,name,cat\n1,Lampe,10\n2,Chaise,10,extra\n3,Table,40\n")
    rows = read_all(spec, tmp_path, start=2)
    assert list(rows["source_row"]) == [2] and list(rows["title"]) == ["Table"]


def test_an_empty_file_is_a_clear_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"listings.csv is empty"):
        read_all(single_file(tmp_path, ""), tmp_path)


def test_a_header_only_file_has_no_rows(tmp_path):
    assert list(iter_source(single_file(tmp_path, "sku,name,cat\n"), tmp_path)) == []


def test_a_labels_file_shorter_or_longer_than_the_features_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text(",sku,name\n0,1,Lampe\n1,2,Chaise\n2,3,Table\n")
    spec = DatasetSpec(name="pair", features_file="x.csv", labels_file="y.csv", index_column=0,
                       columns={"id": "sku", "title": "name", "label": "cat"})  # fmt: skip
    (tmp_path / "y.csv").write_text(",cat\n0,10\n1,40\n")
    with pytest.raises(ValueError, match=r"from row 0 on x.csv has 3 and y.csv has 2"):
        read_all(spec, tmp_path)
    (tmp_path / "y.csv").write_text(",cat\n0,10\n1,40\n2,40\n3,10\n")
    with pytest.raises(ValueError, match=r"from row 0 on x.csv has 3 and y.csv has 4"):
        read_all(spec, tmp_path)
    (tmp_path / "y.csv").write_text(",cat\n0,10\n1,40\n2,40\n")
    assert list(read_all(spec, tmp_path)["label"]) == ["10", "40", "40"]


def test_image_names_outside_the_image_folder_are_refused(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "secret.txt").write_text("not an image")
    text = ("sku,name,cat,picture\n1,Lampe,10,a.jpg\n2,Chaise,10,../secret.txt\n"
            f"3,Table,40,{tmp_path / 'secret.txt'}\n4,Sac,40,\n")  # fmt: skip
    spec = single_file(tmp_path, text, image={"dir": "images", "column": "picture"})
    rows = read_all(spec, tmp_path)
    assert rows["image_path"].iloc[0] == str((tmp_path / "images" / "a.jpg").resolve())
    assert rows["image_path"].iloc[1:].isna().all()  # never the file outside
    reasons = find_rejections(rows, LIMITS, None, set())
    assert list(reasons) == ["", Reason.BAD_IMAGE_PATH, Reason.BAD_IMAGE_PATH, ""]

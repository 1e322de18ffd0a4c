"""The streamed evaluation-set carve: its draw follows the rules, chunk boundaries or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import train_test_split

from prodcat.config import Settings
from prodcat.data import dataset as dataset_module
from prodcat.data.dataset import iter_source, load_dataset_spec, read_label_names
from prodcat.data.evaluation_set import choose_held_out_rows, iter_held_out_rows
from prodcat.data.validate import Limits, find_rejections

LABELS = ["10", "40", "50", "1280", "2583"]
ROWS = 3000


def write_source(folder: Path) -> pd.DataFrame:
    """ROWS listings of uneven labels, with defects of every kind and ids repeated across
    chunks; writes them with a label file and a dataset description, and returns them."""
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({
        "sku": [f"p{i}" for i in range(ROWS)],
        "name": [f"listing {i} {rng.integers(1_000_000)}" for i in range(ROWS)],
        "text": ["" if i % 3 else f"about {i}" for i in range(ROWS)],
        "cat": rng.choice(LABELS, size=ROWS, p=[0.5, 0.25, 0.15, 0.07, 0.03]),
    })  # fmt: skip
    rows.loc[::17, "name"] = ""  # empty title
    rows.loc[5::29, "cat"] = "999"  # unknown label
    rows.loc[7::31, "cat"] = ""  # missing label
    rows.loc[11::37, "text"] = "x" * 300  # too long
    rows.loc[13::41, "sku"] = rows["sku"].shift(400)[13::41]  # an id seen 400 rows earlier
    rows.loc[18::17, "sku"] = rows["sku"].shift(1)[18::17]  # that of the row before, untitled
    rows.loc[[100, 101], "cat"] = "rare"
    rows.loc[101, "name"] = ""  # so "rare" has one valid row: it cannot be stratified
    rows.to_csv(folder / "listings.csv", index=False)
    pd.DataFrame({"cat": [*LABELS, "rare"], "label": "some name"}).to_csv(
        folder / "labels.csv", index=False
    )
    spec = {"name": "carve", "features_file": "listings.csv",
            "columns": {"id": "sku", "title": "name", "description": "text", "label": "cat"},
            "label_names": {"file": "labels.csv", "code_column": "cat",
                            "name_column": "label"}}  # fmt: skip
    (folder / "carve.yaml").write_text(yaml.safe_dump(spec))
    return rows


@pytest.fixture
def source(tmp_path) -> tuple[pd.DataFrame, Settings]:
    rows = write_source(tmp_path)
    data = {"dataset": str(tmp_path / "carve.yaml"), "raw_dir": tmp_path, "eval_size": 300,
            "max_description_chars": 200}  # fmt: skip
    return rows, Settings(_env_file=None, data=data)


def first_valid_of_each_id(rows: pd.DataFrame) -> pd.Index:
    """The rows a carve may draw, by the rules: nothing refused, the first valid row of its
    id, a label with two such rows or more."""
    valid = rows[(rows["name"] != "") & rows["cat"].isin([*LABELS, "rare"])
                 & (rows["text"].str.len() <= 200) & rows["sku"].notna()]  # fmt: skip
    valid = valid.drop_duplicates("sku")
    return valid.index[valid["cat"].map(valid["cat"].value_counts()) >= 2]


def draw(settings: Settings, chunk_rows: int = 97) -> np.ndarray:
    spec = load_dataset_spec(settings)
    labels = read_label_names(spec, settings.data.raw_dir)
    return choose_held_out_rows(spec, settings, labels, chunk_rows).held_out


def draw_on_the_whole_frame(settings: Settings) -> np.ndarray:
    """The carve's definition on the whole source at once, as it was before it streamed."""
    spec = load_dataset_spec(settings)
    source = pd.concat(list(iter_source(spec, settings.data.raw_dir)), ignore_index=True)
    limits = Limits(settings.data.max_title_chars, settings.data.max_description_chars)
    labels = set(read_label_names(spec, settings.data.raw_dir))
    valid = source[find_rejections(source, limits, labels, set()) == ""]
    counts = valid["label"].value_counts()
    valid = valid[valid["label"].isin(counts[counts >= 2].index)]
    _, held_out = train_test_split(
        valid, test_size=settings.data.eval_size, stratify=valid["label"],
        random_state=settings.data.seed,
    )  # fmt: skip
    return np.sort(held_out["source_row"].to_numpy())


def with_data(settings: Settings, **data) -> Settings:
    return settings.model_copy(update={"data": settings.data.model_copy(update=data)})


@pytest.mark.parametrize("chunk_rows", [97, 400, 5000])
def test_the_streamed_draw_is_the_draw_on_the_whole_source(source, chunk_rows):
    _, settings = source
    assert np.array_equal(draw(settings, chunk_rows), draw_on_the_whole_frame(settings))


def test_only_valid_first_occurrences_of_stratifiable_labels_are_held_out(source):
    rows, settings = source
    held_out = draw(settings)
    assert len(held_out) == 300 == len(set(held_out))
    assert set(held_out) <= set(first_valid_of_each_id(rows))
    assert 101 not in held_out  # the 'rare' label's one valid row: left in the stream
    assert set(held_out) & set(rows.index[18::17])  # their id's first row was refused
    picked = rows.loc[held_out]
    assert (picked["name"] != "").all() and picked["cat"].isin(LABELS).all()
    assert not picked["sku"].duplicated().any()


def test_the_draw_is_stratified_by_label(source):
    rows, settings = source
    expected = rows.loc[first_valid_of_each_id(rows), "cat"].value_counts(normalize=True)
    observed = rows.loc[draw(settings), "cat"].value_counts(normalize=True)
    assert (observed.reindex(expected.index, fill_value=0) - expected).abs().max() < 0.02


def test_the_draw_is_reproducible_and_follows_the_seed(source):
    _, settings = source
    first = draw(settings)
    assert np.array_equal(draw(settings, chunk_rows=250), first)
    assert not np.array_equal(draw(with_data(settings, seed=7)), first)


def test_no_evaluation_set_or_one_too_large_for_the_source(source):
    _, settings = source
    assert len(draw(with_data(settings, eval_size=0))) == 0
    with pytest.raises(ValueError, match=r"more than half of the .* lower PRODCAT_DATA__EVAL_SIZE"):
        draw(with_data(settings, eval_size=ROWS // 2))


def test_the_second_pass_collects_the_drawn_rows_whole_and_reads_no_further(source, monkeypatch):
    rows, settings = source
    spec = load_dataset_spec(settings)
    parsed = []
    real = dataset_module.read_records

    def counting(path, spec, start_byte=None):
        for record in real(path, spec, start_byte):
            parsed.append(record)
            yield record

    monkeypatch.setattr(dataset_module, "read_records", counting)
    held_out = np.array([3, 250, 990])
    collected = pd.concat(list(iter_held_out_rows(spec, settings.data.raw_dir, held_out, 100)))
    assert list(collected["source_row"]) == [3, 250, 990]
    assert list(collected["product_id"]) == list(rows.loc[held_out, "sku"])
    assert list(collected["title"]) == list(rows.loc[held_out, "name"])
    assert list(collected["label"]) == list(rows.loc[held_out, "cat"])
    assert len(parsed) == 1000  # the chunk of row 990, then nothing

"""Drift decisions on the real Rakuten titles, with a real model and the real Evidently.

The designations file is split at random into a held-out set (the evaluation set's role), a
training half A and a second half B. A model of the `fast` profile is trained on A. The
frames are built by the same functions the DAG uses, from rows instead of the database.
"""

from __future__ import annotations

import pandas as pd
import pytest

from prodcat.config import DriftSettings, Settings
from prodcat.drift.compare import compare_frames
from prodcat.drift.descriptors import Vocabulary, describe_texts, join_text
from prodcat.drift.frames import current_frame, predict_outputs, reference_frame, usable_columns
from prodcat.training.search import build_pipeline, load_profile, make_estimator, param_prefix

CFG = DriftSettings()


@pytest.fixture(scope="module")
def halves():
    settings = Settings()
    source = pd.read_csv(settings.data.raw_dir / "designations.csv", dtype=str,
                         keep_default_na=False)  # fmt: skip
    rows = pd.DataFrame({
        "product_id": [f"p{i}" for i in range(len(source))],
        "title": source["designation"], "description": "", "label_code": source["prdtypecode"],
    }).sample(frac=1.0, random_state=7).reset_index(drop=True)  # fmt: skip
    held_out, rest = rows.iloc[:2000], rows.iloc[2000:]
    middle = len(rest) // 2
    return held_out, rest.iloc[:middle], rest.iloc[middle:].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(halves):
    _, train, _ = halves
    profile = load_profile("fast")
    candidate = profile["candidates"][0]
    pipeline = build_pipeline(make_estimator(candidate["name"]), profile["text"], profile["tfidf"])
    pipeline.set_params(**{param_prefix(candidate["name"]) + k: v[0]
                           for k, v in candidate["params"].items()})  # fmt: skip
    return pipeline.fit(train[["title", "description"]], train["label_code"])


@pytest.fixture(scope="module")
def reference(halves, model):
    held_out, train, _ = halves
    outputs = predict_outputs(model, held_out, Vocabulary(model))
    outputs = outputs.assign(product_id=held_out["product_id"].to_numpy())
    return reference_frame(train.sample(CFG.reference_rows, random_state=1), outputs)


def check(reference, window: str, rows: pd.DataFrame, model):
    current, wanted = current_frame(window, rows, Vocabulary(model))
    return compare_frames(reference, current, usable_columns(reference, current, wanted), CFG)


def as_traffic(rows: pd.DataFrame, model) -> pd.DataFrame:
    """What prediction_log holds for these listings: the text and the model's answer."""
    outputs = predict_outputs(model, rows, Vocabulary(model))
    return (
        rows[["title", "description"]]
        .reset_index(drop=True)
        .join(outputs[["predicted_category", "confidence"]])
    )


@pytest.mark.parametrize("window", ["new_data", "live_traffic"])
def test_two_random_halves_do_not_drift(reference, halves, model, window):
    _, _, second = halves
    rows = second if window == "new_data" else as_traffic(second, model)
    result = check(reference, window, rows, model)
    assert result.status == "no_drift", result.columns
    assert result.drifted_columns == 0
    assert result.html and "<html" in result.html.lower()


def reshuffle_categories(rows: pd.DataFrame) -> pd.DataFrame:
    """Half the categories removed, the others multiplied to the same number of rows."""
    codes = sorted(rows["label_code"].unique())
    kept = rows[rows["label_code"].isin(codes[::2])]
    return kept.sample(len(rows), replace=True, random_state=3).reset_index(drop=True)


def truncate_titles(rows: pd.DataFrame) -> pd.DataFrame:
    """Every title cut to its first three words."""
    return rows.assign(title=[" ".join(t.split()[:3]) for t in rows["title"]])


@pytest.mark.parametrize("shift", [reshuffle_categories, truncate_titles])
@pytest.mark.parametrize("window", ["new_data", "live_traffic"])
def test_a_shifted_window_drifts(reference, halves, model, window, shift):
    _, _, second = halves
    shifted = shift(second)
    assert len(shifted) >= CFG.min_rows
    rows = shifted if window == "new_data" else as_traffic(shifted, model)
    result = check(reference, window, rows, model)
    assert result.status == "drift", result.columns
    assert result.drifted_columns >= 1


def test_the_categories_shift_is_seen_in_the_key_columns(reference, halves, model):
    _, _, second = halves
    shifted = reshuffle_categories(second)
    labels = check(reference, "new_data", shifted, model)
    assert labels.columns["label"]["drifted"]
    traffic = check(reference, "live_traffic", as_traffic(shifted, model), model)
    assert traffic.columns["predicted_category"]["drifted"]


def test_a_window_below_the_minimum_is_insufficient_data(reference, halves, model):
    _, _, second = halves
    shifted = truncate_titles(second).iloc[: CFG.min_rows - 1]
    result = check(reference, "new_data", shifted, model)
    assert result.status == "insufficient_data" and result.current_rows == CFG.min_rows - 1
    assert result.drift_share is None and result.html is None and not result.columns


def test_traffic_logged_without_raw_text_is_checked_on_the_model_outputs(reference, halves, model):
    _, _, second = halves
    traffic = as_traffic(reshuffle_categories(second), model).assign(title=None, description=None)
    result = check(reference, "live_traffic", traffic, model)
    assert set(result.columns) == {"predicted_category", "confidence"}
    assert result.status == "drift"


def test_descriptors_count_what_they_say():
    described = describe_texts(["Robe ÉTÉ 2024", "", "abc, def!"]).to_dict("records")
    assert described[0] == {
        "chars": 13, "words": 3, "digit_share": 4 / 13, "upper_share": 4 / 7,
        "nonletter_share": 4 / 11,
    }  # fmt: skip
    assert described[1] == dict.fromkeys(described[1], 0.0)
    assert described[2]["nonletter_share"] == 2 / 8 and described[2]["upper_share"] == 0
    assert join_text("Lampe", "<p>Tr&egrave;s <b>belle</b></p>") == "Lampe Très  belle"


def test_out_of_vocabulary_share_uses_the_model_vocabulary(model):
    vocabulary = Vocabulary(model)
    known = sorted(t for t in vocabulary.known if t.isalpha() and len(t) > 3)[:2]
    shares = vocabulary.oov_shares([" ".join(known), f"{known[0]} zzqxv", ""], ["", "", ""])
    assert shares[0] == 0 and shares[1] == 0.5 and pd.isna(shares[2])

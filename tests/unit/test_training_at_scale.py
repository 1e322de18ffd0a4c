"""Training that fits in memory at any catalogue size: the search's stratified sample, the
refit on every row in chunks, and vocabulary caps that bound the features (training/stream.py)."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from prodcat.config import Settings
from prodcat.training.compact import CalibratedLinearEnsemble
from prodcat.training.features import build_tfidf, count_features
from prodcat.training.search import SearchResult, load_profile
from prodcat.training.steps import measure_model_size, search_and_refit
from prodcat.training.stream import (
    CALIBRATION_ROWS,
    label_weights,
    refit_mode,
    refit_winner,
    sample_rows,
    split_calibration_rows,
    streaming_classifier,
)

TOPICS = {
    "10": "livre roman auteur poche edition tome",
    "40": "jeu console manette cartouche import",
    "50": "piscine pompe filtre eau bache",
    "60": "figurine collection statuette resine",
}


def catalogue(rows: dict[str, int], seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Titles of each label's own words, a word of another label and a number: separable,
    but not by a single word."""
    rng = np.random.default_rng(seed)
    titles, labels = [], []
    for label, count in rows.items():
        own = TOPICS[label].split()
        others = [w for code, words in TOPICS.items() if code != label for w in words.split()]
        for _ in range(count):
            words = [*rng.choice(own, 3), rng.choice(others), str(rng.integers(1, 500))]
            titles.append(" ".join(rng.permutation(words)))
            labels.append(label)
    order = rng.permutation(len(titles))
    X = pd.DataFrame({"title": np.asarray(titles)[order], "description": ""})
    return X, pd.Series(np.asarray(labels)[order])


def random_titles(count: int, seed: int = 0) -> list[str]:
    """Titles of random six-letter words: a vocabulary far larger than any cap below."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [" ".join("".join(rng.choice(letters, 6)) for _ in range(5)) for _ in range(count)]


def test_the_search_sample_is_stratified_seeded_and_at_most_search_rows():
    y = pd.Series(["a"] * 6000 + ["b"] * 3000 + ["c"] * 1000)
    sample = sample_rows(y, 1000)
    assert len(sample) == 1000 and len(set(sample)) == 1000
    assert list(sample) == sorted(sample) and sample.min() >= 0 and sample.max() < len(y)
    assert y.iloc[sample].value_counts().to_dict() == {"a": 600, "b": 300, "c": 100}
    assert np.array_equal(sample_rows(y, 1000), sample)  # seeded: the same rows every run
    assert not np.array_equal(sample_rows(y, 1000, seed=7), sample)


def test_every_row_is_searched_when_there_are_no_more_than_search_rows():
    y = pd.Series(["a", "b"] * 500)
    assert np.array_equal(sample_rows(y, 1000), np.arange(1000))
    assert np.array_equal(sample_rows(y, 5000), np.arange(1000))


def test_a_label_seen_once_does_not_stop_the_sample():
    y = pd.Series(["a"] * 3000 + ["b"] * 1999 + ["lonely"])
    sample = sample_rows(y, 1000)
    assert len(sample) == 1000
    assert abs(y.iloc[sample].value_counts()["a"] - 600) <= 1


def test_calibration_rows_are_held_out_of_the_streamed_fit_and_bounded():
    y = pd.Series(["a", "b", "c", "d"] * 100_000)
    learn, held = split_calibration_rows(y)
    assert len(held) == CALIBRATION_ROWS and len(learn) == len(y) - CALIBRATION_ROWS
    assert not set(learn) & set(held)
    small = pd.Series(["a", "b"] * 5_000)
    assert len(split_calibration_rows(small)[1]) == 1_000  # a tenth below the bound


@pytest.mark.parametrize("profile", ["fast", "winner"])  # the winner's views include the shape
def test_the_streamed_refit_learns_from_every_row_not_only_the_search_sample(profile):
    X, y = catalogue({"10": 1500, "40": 1500, "50": 1500, "60": 1500})
    in_sample = np.flatnonzero((y != "60").to_numpy())[:2000]  # no row of label 60
    outside = np.setdiff1d(np.arange(len(X)), in_sample)[0]
    X.loc[outside, "title"] += " zzonlyhere"
    search = SearchResult("linear_svc", {"C": 0.5, "class_weight": "balanced"}, 0.9)
    assert refit_mode(search, len(in_sample), len(X)) == "streamed"
    model = refit_winner(X, y, search, profile, in_sample)
    words = model.named_steps["tfidf"].transformer_list[0][1].vocabulary_
    assert "zzonlyhere" not in words and "figurine" in words  # n-grams of the sample only
    assert isinstance(model.steps[-1][1], CalibratedLinearEnsemble)
    assert list(model.classes_) == ["10", "40", "50", "60"]
    test_X, test_y = catalogue({"10": 100, "40": 100, "50": 100, "60": 100}, seed=1)
    predicted = model.predict(test_X)
    assert (predicted == test_y.to_numpy()).mean() > 0.9
    assert (predicted[test_y.to_numpy() == "60"] == "60").mean() > 0.9
    proba = model.predict_proba(test_X)
    assert np.allclose(proba.sum(axis=1), 1)


def test_a_label_too_rare_for_the_calibration_slice_stays_in_the_streamed_model():
    X, y = catalogue({"10": 2000, "40": 2000, "50": 1996, "60": 4})
    _, held = split_calibration_rows(y)
    assert "60" not in set(y.iloc[held])  # the slice's stratified share of 60 rounds to 0
    search = SearchResult("linear_svc", {"C": 0.5, "class_weight": "balanced"}, 0.9)
    model = refit_winner(X, y, search, "fast", sample_rows(y, 1000))
    assert isinstance(model.steps[-1][1], CalibratedLinearEnsemble)
    assert list(model.classes_) == ["10", "40", "50", "60"]


def test_a_search_on_the_sample_then_a_refit_on_all_rows(monkeypatch):
    X, y = catalogue({"10": 1500, "40": 1500, "50": 1490, "60": 10})
    settings = Settings(_env_file=None, training={"profile": "fast", "search_rows": 1000})
    assert "60" in set(y.iloc[sample_rows(y, 1000)])  # stratified: even the rare label
    search, model = search_and_refit(X, y, settings)
    assert search.rows == 1000
    assert list(model.classes_) == ["10", "40", "50", "60"]
    everything = Settings(_env_file=None, training={"profile": "fast", "search_rows": 10_000})
    assert search_and_refit(X, y, everything)[0].rows == len(X)


def test_caps_bound_the_features_of_a_corpus_larger_than_them():
    docs = random_titles(3000)
    uncapped = build_tfidf(char_ngrams=(2, 4), cased_ngrams=(2, 3), char_min_df=1).fit(docs)
    capped = build_tfidf(char_ngrams=(2, 4), cased_ngrams=(2, 3), char_min_df=1,
                         max_word_features=500, max_char_features=2000).fit(docs)  # fmt: skip
    sizes = {name: len(view.vocabulary_) for name, view in capped.transformer_list}
    assert sizes == {"word": 500, "char": 2000, "cased": 2000}
    assert count_features(capped) == 4500
    assert count_features(uncapped) > 5 * count_features(capped)
    assert capped.transform(random_titles(10, seed=1)).shape[1] == 4500
    shaped = build_tfidf(char_ngrams=(2, 4), cased_ngrams=(2, 3), char_min_df=1,
                         max_word_features=500, max_char_features=2000,
                         shape_weight=0.3).fit(docs)  # fmt: skip
    bins = shaped.transform(random_titles(10, seed=1)).shape[1] - 4500
    assert bins > 20 and count_features(shaped) == 4500 + bins


def test_every_profile_caps_its_vocabulary():
    for profile in ("fast", "full", "winner"):
        tfidf = load_profile(profile)["tfidf"]
        assert tfidf["max_word_features"] > 0 and tfidf["max_char_features"] > 0


def test_balanced_label_weights_are_sklearns():
    y = pd.Series(["a"] * 70 + ["b"] * 20 + ["c"] * 10)
    expected = compute_class_weight("balanced", classes=np.array(["a", "b", "c"]), y=y)
    weights = label_weights(y, "balanced")
    assert [weights[c] for c in "abc"] == pytest.approx(list(expected))
    assert label_weights(y, None) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert label_weights(y, {"b": 3.0}) == {"a": 1.0, "b": 3.0, "c": 1.0}


def test_the_streamed_winner_keeps_its_objective_scaled_to_every_row():
    svc = streaming_classifier(SearchResult("linear_svc", {"C": 0.5}, 0.0, rows=50_000), 200_000)
    assert svc.alpha == pytest.approx(1 / (0.5 * 200_000)) and svc.loss == "hinge"
    searched = SearchResult("sgd", {"alpha": 2e-5, "class_weight": "balanced"}, 0.0, rows=50_000)
    sgd = streaming_classifier(searched, 200_000)
    assert sgd.alpha == pytest.approx(2e-5 / 4) and sgd.loss == "modified_huber"


def test_the_model_size_is_its_pickle_size():
    X, y = catalogue({"10": 200, "40": 200, "50": 200})
    model = refit_winner(X, y, SearchResult("linear_svc", {"C": 0.5}, 0.0), "fast",
                         np.arange(len(X)))  # fmt: skip
    assert measure_model_size(model) == len(cloudpickle.dumps(model, pickle.DEFAULT_PROTOCOL))

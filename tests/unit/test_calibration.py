"""Expected calibration error (15 equal-width bins) on hand-computed cases and a real model."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from prodcat.training.compact import (
    CalibratedLinearEnsemble,
    TemperatureScaled,
    apply_temperature,
    fit_temperature,
    sharpen,
)
from prodcat.training.evaluate import evaluate_model, measure_calibration
from prodcat.training.search import build_pipeline, make_estimator

from ..models import train_small_model


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy_per_bin():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.3, 0.7]])
    # Confidence 0.9 twice, right once: gap 0.4 on half the rows. Confidence 0.7 twice,
    # right twice: gap 0.3 on the other half. ECE = 0.5 * 0.4 + 0.5 * 0.3.
    calibration = measure_calibration(proba, ["a", "b"], ["a", "b", "b", "b"])
    assert calibration.ece == pytest.approx(0.35)
    assert [(b["count"], b["accuracy"]) for b in calibration.bins] == [(2, 1.0), (2, 0.5)]
    assert calibration.bins[0]["lower"] < 0.7 <= calibration.bins[0]["upper"]


def test_a_model_right_whenever_it_is_sure_and_sure_whenever_right_has_no_error():
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    # The two 0.5 rows both predict "a" (the first column): one right, one wrong.
    assert measure_calibration(proba, ["a", "b"], ["a", "b", "a", "b"]).ece == 0.0


def test_the_predicted_class_follows_the_models_column_order():
    proba = np.array([[0.2, 0.8]])
    assert measure_calibration(proba, ["x", "y"], ["y"]).ece == pytest.approx(0.2)
    assert measure_calibration(proba, ["y", "x"], ["y"]).ece == pytest.approx(0.8)


def test_the_evaluation_of_a_real_model_reports_its_ece_over_every_row():
    model = train_small_model()
    X = pd.DataFrame({"title": ["console manette jeu", "robe rouge", "piscine gonflable"] * 20,
                      "description": [""] * 60})  # fmt: skip
    y = pd.Series(model.predict(X)).where(lambda s: s.index % 3 != 0, model.classes_[0])
    evaluation = evaluate_model(model, X, y)
    calibration = evaluation.calibration
    assert evaluation.metrics["ece"] == calibration.ece and 0 <= calibration.ece <= 1
    assert sum(b["count"] for b in calibration.bins) == len(X)


def test_sharpening_keeps_each_rows_ranking_and_sums_to_one():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    sharper = sharpen(proba, 0.5)
    assert (sharper.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert np.allclose(sharper.sum(axis=1), 1.0) and sharper[0, 0] > proba[0, 0]
    assert sharpen(proba, 1.0) is proba


def test_the_fitted_temperature_undoes_a_known_flattening():
    rng = np.random.default_rng(0)
    truth = rng.dirichlet([0.3] * 5, size=4000)  # sharp, and right as often as they say
    labels = np.array([rng.choice(5, p=p) for p in truth])
    flattened = sharpen(truth, 2.0)  # an underconfident model's view of the same rows
    temperature = fit_temperature(flattened, np.arange(5), labels)
    assert temperature == pytest.approx(0.5, abs=0.05)
    fixed = sharpen(flattened, temperature)
    before = measure_calibration(flattened, np.arange(5), labels).ece
    assert measure_calibration(fixed, np.arange(5), labels).ece < before / 3


def test_an_ensemble_pickled_before_temperatures_existed_still_predicts_the_same():
    model = train_small_model()
    ensemble = model.steps[-1][1]
    assert isinstance(ensemble, CalibratedLinearEnsemble)
    X = pd.DataFrame({"title": ["console manette jeu", "robe rouge"], "description": ["", ""]})
    expected = model.predict_proba(X)
    del ensemble.__dict__["temperature"]  # what an older release pickled
    restored = pickle.loads(pickle.dumps(model))
    assert restored.steps[-1][1].temperature == 1.0
    assert np.array_equal(restored.predict_proba(X), expected)


def test_a_winner_of_any_kind_gets_its_temperature_inside_the_logged_model():
    rows = pd.DataFrame({"title": [f"{w} {i}" for i in range(40) for w in ("livre", "console")],
                         "description": [""] * 80})  # fmt: skip
    labels = pd.Series(["10", "40"] * 40)
    pipeline = build_pipeline(make_estimator("complement_nb"), {}, {"char_min_df": 1}).fit(
        rows, labels
    )
    before, predicted = pipeline.predict_proba(rows), pipeline.predict(rows)
    scaled = pickle.loads(pickle.dumps(apply_temperature(pipeline, 0.5)))
    assert isinstance(scaled.steps[-1][1], TemperatureScaled)
    assert np.allclose(scaled.predict_proba(rows), sharpen(before, 0.5))
    assert (scaled.predict(rows) == predicted).all() and list(scaled.classes_) == ["10", "40"]
    ensemble = apply_temperature(train_small_model(), 0.7).steps[-1][1]
    assert isinstance(ensemble, CalibratedLinearEnsemble) and ensemble.temperature == 0.7

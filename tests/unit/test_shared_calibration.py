"""One sigmoid shared by all classes: it recovers known probabilities, keeps the margins'
ranking, compacts to the same answers, and is what the full profile's refit logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import LinearSVC

from prodcat.config import Settings
from prodcat.training.calibration import (
    SharedSigmoidCalibration,
    fit_shared_sigmoid,
    shared_log_proba,
)
from prodcat.training.compact import CalibratedLinearEnsemble, compact_pipeline
from prodcat.training.search import SearchResult, build_pipeline, fit_best, load_profile

from ..models import ROOT


def real_rows(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    data = pd.read_csv(ROOT / Settings().data.raw_dir / "designations.csv").dropna()
    data = data.sample(rows, random_state=seed)
    titles = pd.DataFrame({"title": data["designation"].to_numpy(), "description": ""})
    return titles, pd.Series(data["prdtypecode"].astype(str).to_numpy())


def test_the_fitted_sigmoid_gives_back_the_probabilities_labels_were_drawn_from():
    rng = np.random.default_rng(1)
    margins = rng.normal(-1.0, 0.7, size=(5000, 6))
    margins[np.arange(5000), rng.integers(0, 6, 5000)] += 1.5
    truth = np.exp(shared_log_proba(margins, 1.5, 0.5, 2.0))
    labels = np.array([rng.choice(6, p=p) for p in truth])
    slope, offset, power = fit_shared_sigmoid(margins, np.arange(6), labels)
    fitted = np.exp(shared_log_proba(margins, slope, offset, power))
    assert slope > 0 and power > 0

    def log_loss(proba: np.ndarray) -> float:
        return float(-np.log(proba[np.arange(len(labels)), labels]).mean())

    # The parameters are not identifiable (a long valley), but on its own sample the fit must
    # do at least as well as the truth: a search that stops in the valley does not.
    assert log_loss(fitted) <= log_loss(truth)
    assert np.abs(fitted - truth).mean() < 0.01
    # A plain softmax of the same margins is the map the fit starts from, and is far off.
    softmax = np.exp(shared_log_proba(margins, 2.0, 0.0, 1.0))
    assert np.abs(softmax - truth).mean() > 3 * np.abs(fitted - truth).mean()


def test_probabilities_rank_classes_as_the_margins_do_and_compact_to_the_same_answers():
    X, y = real_rows(3000, seed=3)
    profile = load_profile("winner")
    calibrated = SharedSigmoidCalibration(LinearSVC(C=0.5, class_weight="balanced"))
    pipeline = build_pipeline(calibrated, profile["text"], profile["tfidf"]).fit(X, y)
    unseen, _ = real_rows(1000, seed=4)
    proba = pipeline.predict_proba(unseen)
    margins = pipeline[:-1].transform(unseen)
    svc = pipeline.named_steps["clf"].estimator_
    assert np.array_equal(proba.argmax(axis=1), svc.decision_function(margins).argmax(axis=1))
    assert np.allclose(proba.sum(axis=1), 1.0)
    compacted = compact_pipeline(pipeline)
    assert isinstance(compacted.named_steps["clf"], CalibratedLinearEnsemble)
    assert np.abs(compacted.predict_proba(unseen) - proba).max() < 1e-3
    assert (compacted.predict(unseen) == svc.classes_[proba.argmax(axis=1)]).all()


def test_the_full_profiles_refit_logs_one_model_with_one_shared_sigmoid():
    assert load_profile("full")["calibration"] == load_profile("winner")["calibration"] == "shared"
    X, y = real_rows(2000, seed=5)
    result = SearchResult("linear_svc", {"C": 0.5, "class_weight": "balanced"}, 0.8)
    ensemble = fit_best(X, y, result, "winner").named_steps["clf"]
    assert isinstance(ensemble, CalibratedLinearEnsemble)
    classes = len(ensemble.classes)
    assert ensemble.weights.shape[1] == classes  # one member, not three
    assert np.unique(ensemble.slopes).size == 1 and np.unique(ensemble.offsets).size == 1
    assert ensemble.slopes[0] < 0 and 0 < ensemble.temperature < 1  # increasing, sharpened


def test_an_unknown_calibration_is_refused(monkeypatch):
    profile = dict(load_profile("winner"), calibration="isotonic")
    monkeypatch.setattr("prodcat.training.search.load_profile", lambda name: profile)
    result = SearchResult("linear_svc", {"C": 0.5}, 0.8)
    with pytest.raises(ValueError, match="unknown calibration 'isotonic'"):
        fit_best(*real_rows(300, seed=6), result, "winner")


def test_a_class_of_one_row_leaves_the_sigmoid_finite(caplog):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, size=(4, 5))
    labels = np.array([0] * 100 + [1] * 100 + [2] * 100 + [3])  # class 3: a single row
    X = centres[labels] + rng.normal(0, 1, size=(len(labels), 5))
    model = SharedSigmoidCalibration(LinearSVC(C=0.5), cv=3).fit(X, labels)
    # Its fold's model never saw class 3: the row's margin for it was the lowest float.
    assert "1 rows left out of the sigmoid's fit" in caplog.text
    assert np.isfinite([model.slope_, model.offset_, model.power_]).all()
    assert model.slope_ > 0 and model.power_ > 0
    assert (model.slope_, model.offset_, model.power_) != (2.0, 0.0, 1.0)  # it left its start
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
    assert (model.predict(X) == labels).mean() > 0.9

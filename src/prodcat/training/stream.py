"""Training at catalogue scale: the search on a sample, the winner refit on every row in chunks.

The exact refit (search.fit_best) holds every row's TF-IDF features at once (about 540
non-zeros per title, 12 bytes each), liblinear copies them (16 bytes each), and calibration fits
four more models on them: at a million titles, some 15 GB. Past the search sample, a linear
winner is refit here instead:
- its TF-IDF views, capped per profile, are fitted on the search sample;
- it learns from every row in shuffled chunks by stochastic gradient descent on its own
  objective (for a LinearSVC, its C made SGD's alpha);
- its per-class sigmoids and temperature are fitted on a held-out slice.
Memory holds one chunk's features whatever the catalogue's size.

Measured on 100k rows generated from the 80% split of designations.csv, scored on the 20%
(weighted / macro F1): LinearSVC on every row 0.8158 / 0.7985 (3.0 GB); on a 50k sample
0.8149 / 0.7970; SGD with the hinge, 3 passes, here 0.8151 / 0.7978 (2 passes 0.8085; alpha
halved 0.8103, doubled 0.8116; squared hinge 0.7138; averaged SGD 0.8056).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from prodcat.training.compact import apply_temperature, compact_calibrated, fit_temperature
from prodcat.training.features import count_features
from prodcat.training.search import (
    SEED,
    SearchResult,
    build_pipeline,
    fit_best,
    load_profile,
    make_estimator,
)

log = logging.getLogger(__name__)
STREAMABLE = ("linear_svc", "sgd")  # winners whose objective SGD minimises in chunks
# Rows per partial_fit: the TF-IDF transform ran 2-3x faster per row on 5,000 rows than on
# 20,000 (its sorts and hash lookups stay in cache), and SGD learns as well either way.
CHUNK_ROWS = 5_000
EPOCHS = 3
# Held out of the streamed fit: half fits the per-class sigmoids, half the temperature.
CALIBRATION_ROWS = 20_000


def sample_rows(y: pd.Series, rows: int, seed: int = SEED) -> np.ndarray:
    """Sorted positions of a seeded sample of at most `rows` rows, stratified by label (each
    label keeps its share, to rounding); every position when y has no more rows."""
    if len(y) <= rows:
        return np.arange(len(y))
    return split_positions(y, rows, seed)[0]


def split_positions(y: pd.Series, first: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """y's positions split in two, `first` of them in the first part, stratified by label
    where it can be (a label seen once rides with the commonest: a stratum of one cannot be
    split); both parts sorted."""
    strata = y.where(y.map(y.value_counts()) >= 2, y.value_counts().index[0])
    small = min(first, len(y) - first)
    a, b = train_test_split(
        np.arange(len(y)), train_size=first, random_state=seed,
        stratify=strata if strata.nunique() <= small else None,
    )  # fmt: skip
    return np.sort(a), np.sort(b)


def refit_winner(
    X: pd.DataFrame, y: pd.Series, result: SearchResult, profile: str, sample: np.ndarray
) -> Pipeline:
    """The winner refit on every row: exactly when the search saw them all, else in chunks."""
    if refit_mode(result, len(sample), len(X)) == "streamed":
        return fit_streaming(X, y, result, profile, sample)
    if len(sample) < len(X):
        log.warning("%s cannot learn in chunks: refitting it on all %d rows at once, with memory "
                    "growing with the rows", result.best_name, len(X))  # fmt: skip
    return fit_best(X, y, result, profile)


def refit_mode(result: SearchResult, searched: int, rows: int) -> str:
    """How the winner is refit on `rows` rows after a search on `searched` of them."""
    return "streamed" if searched < rows and result.best_name in STREAMABLE else "exact"


def fit_streaming(
    X: pd.DataFrame, y: pd.Series, result: SearchResult, profile: str, sample: np.ndarray
) -> Pipeline:
    """A linear winner learnt from every row in chunks, calibrated, compacted for inference."""
    config = load_profile(profile)
    pipeline = build_pipeline(make_estimator(result.best_name), config.get("text"),
                              config.get("tfidf"))  # fmt: skip
    started = time.perf_counter()
    featurize = pipeline[:2].fit(X.iloc[sample])  # clean -> TF-IDF, fitted on the sample
    log.info("TF-IDF views fitted on %d rows in %.0f s: %d features", len(sample),
             time.perf_counter() - started, count_features(featurize))  # fmt: skip
    learn, held = split_calibration_rows(y)
    classifier = streaming_classifier(result, len(learn))
    weights = label_weights(y.iloc[learn], result.best_params.get("class_weight"))
    learn_in_chunks(classifier, featurize, X, y, learn, weights)
    model, temperature = calibrate(classifier, featurize, X, y, held)
    pipeline.steps[-1] = ("clf", model)
    return apply_temperature(pipeline, temperature)


def learn_in_chunks(
    classifier: SGDClassifier,
    featurize: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    learn: np.ndarray,
    weights: dict[str, float],
) -> None:
    """EPOCHS passes of partial_fit over the rows at `learn`, in shuffled chunks. The first
    pass computes each chunk's features and keeps them on disk for the others: the TF-IDF
    transform costs more than the gradient steps."""
    order = np.random.default_rng(SEED).permutation(learn)
    chunks = [order[start : start + CHUNK_ROWS] for start in range(0, len(order), CHUNK_ROWS)]
    classes = np.unique(y.to_numpy())
    with tempfile.TemporaryDirectory(prefix="prodcat-features-") as folder:
        for epoch in range(EPOCHS):
            started = time.perf_counter()
            for i in np.random.default_rng(SEED + epoch).permutation(len(chunks)):
                stored = Path(folder) / f"{i}.npz"
                if epoch == 0:
                    features = featurize.transform(X.iloc[chunks[i]]).astype(np.float32)
                    sp.save_npz(stored, features, compressed=False)
                else:
                    features = sp.load_npz(stored)
                labels = y.iloc[chunks[i]]
                classifier.partial_fit(features, labels, classes=classes,
                                       sample_weight=labels.map(weights).to_numpy())  # fmt: skip
            log.info("epoch %d of %d over %d rows in %.0f s", epoch + 1, EPOCHS, len(learn),
                     time.perf_counter() - started)  # fmt: skip


def split_calibration_rows(y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions learnt from, and positions held out to calibrate (stratified, seeded, at
    most CALIBRATION_ROWS and a tenth of the rows)."""
    return split_positions(y, len(y) - min(CALIBRATION_ROWS, len(y) // 10))


def streaming_classifier(result: SearchResult, rows: int) -> SGDClassifier:
    """An SGD classifier for the winner's objective over `rows` rows. A LinearSVC's (C times
    the summed hinge, plus half the squared norm) divided by C * rows is SGD's, with alpha
    1/(C * rows); its hinge is plain, not squared: squared, SGD's steps trained far worse
    (module docstring). An SGD winner keeps its loss, its alpha scaled from the rows it
    was searched on to all of them (the same C)."""
    if result.best_name == "linear_svc":
        alpha = 1.0 / (result.best_params.get("C", 1.0) * rows)
        classifier = SGDClassifier(loss="hinge", alpha=alpha)
    else:
        own = {k: v for k, v in result.best_params.items() if k != "class_weight"}
        classifier = make_estimator(result.best_name).set_params(**own)
        classifier.set_params(alpha=classifier.alpha * (result.rows or rows) / rows)
    return classifier.set_params(n_jobs=2, random_state=SEED)


def label_weights(y: pd.Series, class_weight: str | dict | None) -> dict[str, float]:
    """Each label's sample weight: as class_weight="balanced" weighs them (rows over labels
    times the label's rows), a given dict's, or 1. (partial_fit takes no "balanced".)"""
    counts = y.value_counts()
    if class_weight == "balanced":
        return (len(y) / (len(counts) * counts)).to_dict()
    given = class_weight or {}
    return {label: float(given.get(label, 1.0)) for label in counts.index}


def calibrate(
    classifier: BaseEstimator, featurize: Pipeline, X: pd.DataFrame, y: pd.Series, held: np.ndarray
) -> tuple[BaseEstimator, float]:
    """The classifier with per-class sigmoids fitted on half the held-out rows, compacted for
    inference; and the temperature fitted on the other half."""
    first, second = (held[part] for part in split_positions(y.iloc[held], len(held) // 2))
    first = with_every_label(first, y)
    calibrated = CalibratedClassifierCV(FrozenEstimator(classifier), method="sigmoid")
    calibrated.fit(featurize.transform(X.iloc[first]), y.iloc[first])
    model = compact_calibrated(calibrated) or calibrated
    proba = model.predict_proba(featurize.transform(X.iloc[second]))
    temperature = fit_temperature(proba, model.classes_, y.iloc[second])
    log.info("calibrated on %d held-out rows; confidence temperature %.3f", len(held), temperature)
    return model, temperature


def with_every_label(positions: np.ndarray, y: pd.Series, rows: int = 5) -> np.ndarray:
    """positions, plus up to `rows` rows of each label they lack. A label without a sigmoid
    would drop out of the calibrated model; a rare one's few rows, learnt from, make its
    sigmoid somewhat overconfident, which is the lesser harm."""
    labels = y.to_numpy()
    missing = np.setdiff1d(np.unique(labels), labels[positions])
    extra = [np.flatnonzero(labels == label)[:rows] for label in missing]
    return np.union1d(positions, np.concatenate(extra)) if extra else positions

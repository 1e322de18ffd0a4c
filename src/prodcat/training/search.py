"""Model search: candidate pipelines, a grid per candidate, successive halving, weighted F1.

Every candidate is one named sklearn Pipeline (clean -> tfidf -> [reduce] -> clf), so the
model that wins carries its own preprocessing.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from joblib import Memory
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import HalvingGridSearchCV, StratifiedKFold, train_test_split
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.svm import LinearSVC

from prodcat.training.calibration import SharedSigmoidCalibration
from prodcat.training.compact import apply_temperature, compact_pipeline, fit_temperature
from prodcat.training.features import ProductTextCleaner, build_tfidf

log = logging.getLogger(__name__)
GRIDS = Path(__file__).parent / "grids.yaml"
SEED = 42
# How a LinearSVC winner's margins become probabilities (a profile's `calibration`): a
# 3-member ensemble with per-class sigmoids, one model with per-class sigmoids, or one model
# with one sigmoid shared by all classes (training/calibration.py), which keeps its ranking.
CALIBRATIONS = ("ensemble", "per_class", "shared")


class EncodedXGBClassifier(BaseEstimator):
    """XGBoost with string labels: it wants 0..n-1, the catalogue has category codes."""

    def __init__(self, n_estimators: int = 100, max_depth: int = 6, learning_rate: float = 0.3):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate

    def fit(self, X, y, sample_weight=None):
        from xgboost import XGBClassifier

        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            learning_rate=self.learning_rate, tree_method="hist", n_jobs=2, random_state=SEED,
        )  # fmt: skip
        self.model_.fit(X, self.encoder_.transform(y), sample_weight=sample_weight)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.encoder_.inverse_transform(self.model_.predict(X))


def make_estimator(name: str, probabilities: bool = True) -> BaseEstimator:
    """A fresh classifier by candidate name. With probabilities, a LinearSVC is calibrated
    (sigmoid per class, 3 folds; see fit_best for one model instead of three); without, it is
    bare, which is all a search scored on F1 needs."""
    factories = {
        "linear_svc": lambda: (
            CalibratedClassifierCV(LinearSVC(), cv=3) if probabilities else LinearSVC()
        ),
        # lbfgs over ~1M TF-IDF columns: a bounded number of passes keeps the search in budget.
        "logistic_regression": lambda: LogisticRegression(max_iter=60, tol=1e-3),
        "sgd": lambda: SGDClassifier(loss="modified_huber", max_iter=30, random_state=SEED),
        "complement_nb": ComplementNB,
        "xgboost": EncodedXGBClassifier,
        "random_forest": lambda: RandomForestClassifier(
            n_jobs=2, class_weight="balanced_subsample", random_state=SEED
        ),
    }
    if name not in factories:
        raise KeyError(f"unknown candidate {name!r}; known: {', '.join(factories)}")
    return factories[name]()


def param_prefix(name: str, probabilities: bool = True) -> str:
    """Where a candidate's own parameters live inside the pipeline."""
    return "clf__estimator__" if name == "linear_svc" and probabilities else "clf__"


def load_profile(profile: str, grids_file: Path = GRIDS) -> dict[str, Any]:
    """One search profile (fast or full) from the grid configuration."""
    profiles = yaml.safe_load(grids_file.read_text())["profiles"]
    if profile not in profiles:
        raise KeyError(f"unknown training profile {profile!r}; known: {', '.join(profiles)}")
    return profiles[profile]


def build_pipeline(
    estimator: BaseEstimator,
    text: dict | None = None,
    tfidf: dict | None = None,
    reduce: int | None = None,
    memory: Memory | None = None,
) -> Pipeline:
    """The named pipeline every model is: clean -> tfidf -> reduce -> clf."""
    return Pipeline(
        [
            ("clean", ProductTextCleaner(**(text or {}))),
            ("tfidf", build_tfidf(**(tfidf or {}))),
            ("reduce", TruncatedSVD(reduce, random_state=SEED) if reduce else "passthrough"),
            ("clf", estimator),
        ],
        memory=memory,
    )


@dataclass
class SearchResult:
    best_name: str
    best_params: dict[str, Any]  # the classifier's own parameter names
    best_score: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    rows: int = 0  # rows searched on (a sample of the training set past search_rows)


def search_candidates(X: pd.DataFrame, y: pd.Series, profile: str) -> SearchResult:
    """Grid-search every candidate at once by successive halving over rows (stratified k-fold,
    weighted F1): every setting is scored on a third of the rows, the best third go on to
    all of them. Candidates that cannot win stop early; each fold's scores are logged."""
    config = load_profile(profile)
    folds = StratifiedKFold(config["cv_folds"], shuffle=True, random_state=SEED)
    started, named = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="prodcat-cache-") as cache:
        memory = Memory(cache, verbose=0)  # cleaning and TF-IDF: fitted once per fold and round
        first = make_estimator(config["candidates"][0]["name"], probabilities=False)
        pipeline = build_pipeline(first, config.get("text"), config.get("tfidf"), None, memory)
        grid = [candidate_grid(candidate, named) for candidate in config["candidates"]]
        search = HalvingGridSearchCV(
            pipeline, grid, factor=3, resource="n_samples", scoring=log_fold_score,
            cv=folds, refit=False, n_jobs=1, random_state=SEED, error_score="raise",
            return_train_score=False,
        )  # fmt: skip
        search.fit(X, y)
    results = collect_results(search, dict(named))
    final = [r for r in results if r["round"] == search.n_iterations_ - 1]
    best = max(final, key=lambda r: r["cv_f1"])
    return SearchResult(best["candidate"], best["params"], best["cv_f1"], results,
                        time.perf_counter() - started, len(X))  # fmt: skip


def candidate_grid(candidate: dict[str, Any], named: list) -> dict[str, list]:
    """One candidate's grid over the shared pipeline: its classifier, its reduce step, and
    its own parameters; named records which estimator object is which candidate."""
    estimator = make_estimator(candidate["name"], probabilities=False)
    named.append((id(estimator), candidate))
    reduce = candidate.get("reduce")
    return {
        "clf": [estimator],
        "reduce": [TruncatedSVD(reduce, random_state=SEED) if reduce else "passthrough"],
        **{"clf__" + k: v for k, v in candidate["params"].items()},
    }


def collect_results(search: HalvingGridSearchCV, named: dict[int, dict]) -> list[dict[str, Any]]:
    """Every scored setting: candidate, its own parameters, halving round, rows, CV F1."""
    cv = search.cv_results_
    results = []
    for i, params in enumerate(cv["params"]):
        candidate = named[id(params["clf"])]
        own = {k.removeprefix("clf__"): v for k, v in params.items() if k not in ("clf", "reduce")}
        results.append({
            "candidate": candidate["name"], "reduce": candidate.get("reduce"), "params": own,
            "round": int(cv["iter"][i]), "rows": int(cv["n_resources"][i]),
            "cv_f1": float(cv["mean_test_score"][i]), "cv_std": float(cv["std_test_score"][i]),
        })  # fmt: skip
    for r in sorted(results, key=lambda r: (r["round"], -r["cv_f1"])):
        log.info("round %d, %5d rows: %-20s CV weighted F1 %.4f %s",
                 r["round"], r["rows"], r["candidate"], r["cv_f1"], r["params"])  # fmt: skip
    return results


def log_fold_score(estimator: Pipeline, X: pd.DataFrame, y: pd.Series) -> float:
    """Weighted F1 of one fitted fold, logged as it comes: the search's progress."""
    score = float(f1_score(y, estimator.predict(X), average="weighted", zero_division=0))
    classifier = estimator.steps[-1][1]
    name = type(getattr(classifier, "estimator", classifier)).__name__
    log.info("scored %s on %d held-out rows: weighted F1 %.4f", name, len(X), score)
    return score


def fit_best(X: pd.DataFrame, y: pd.Series, result: SearchResult, profile: str) -> Pipeline:
    """Refit the winning candidate on all the training rows, compacted for inference."""
    config = load_profile(profile)
    reduce = next(c.get("reduce") for c in config["candidates"] if c["name"] == result.best_name)
    pipeline = build_pipeline(
        make_estimator(result.best_name), config.get("text"), config.get("tfidf"), reduce
    )
    prefix = param_prefix(result.best_name)
    pipeline.set_params(**{prefix + k: v for k, v in result.best_params.items()})
    calibration = config.get("calibration", "ensemble")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; known: {CALIBRATIONS}")
    log.info("refitting %s on %d rows with %s", result.best_name, len(X), result.best_params)
    if result.best_name == "linear_svc" and calibration == "shared":
        pipeline.set_params(clf=SharedSigmoidCalibration(pipeline.named_steps["clf"].estimator))
        return compact_pipeline(pipeline.fit(X, y))  # its power is its temperature
    if result.best_name == "linear_svc":
        # One LinearSVC on all rows, its sigmoids fitted on out-of-fold margins, is more
        # accurate; the three-member ensemble is better calibrated on a few thousand rows
        # (ECE 0.051 against 0.034 at 4,000: the gate's limit is 0.05).
        pipeline.set_params(clf__ensemble=calibration == "ensemble")
    temperature = measure_temperature(pipeline, X, y)
    return apply_temperature(compact_pipeline(pipeline.fit(X, y)), temperature)


def measure_temperature(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series) -> float:
    """The temperature that makes the model's confidence match its accuracy: fitted on a
    tenth of the rows held out from a fit on the rest (one more fit, of the winner only)."""
    stratify = y if y.value_counts().min() >= 2 else None
    X_fit, X_held, y_fit, y_held = train_test_split(
        X, y, test_size=0.1, stratify=stratify, random_state=SEED
    )
    log.info("fitting on %d rows to calibrate on %d held out", len(X_fit), len(X_held))
    probe = compact_pipeline(clone(pipeline).fit(X_fit, y_fit))
    known = y_held.isin(probe.classes_)
    proba = probe.predict_proba(X_held[known.to_numpy()])
    temperature = fit_temperature(proba, probe.classes_, y_held[known])
    log.info("confidence temperature %.3f (below 1 sharpens)", temperature)
    return temperature

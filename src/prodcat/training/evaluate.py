"""Scoring on the fixed evaluation set: metrics, per-class report, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


@dataclass
class Evaluation:
    metrics: dict[str, float]
    report: dict[str, Any]
    confusion: np.ndarray
    labels: list[str]
    calibration: Calibration | None = None  # None for a model without probabilities


def evaluate_model(model, X: pd.DataFrame, y: pd.Series) -> Evaluation:
    """Weighted and macro F1, accuracy, ECE, the per-class report and the confusion matrix."""
    predicted = model.predict(X)
    labels = sorted(set(y) | set(predicted))
    calibration = None
    if hasattr(model, "predict_proba"):
        calibration = measure_calibration(model.predict_proba(X), model.classes_, y)
    metrics = {
        "f1_weighted": float(f1_score(y, predicted, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
    }
    if calibration is not None:
        metrics["ece"] = calibration.ece
    return Evaluation(
        metrics=metrics,
        report=classification_report(y, predicted, output_dict=True, zero_division=0),
        confusion=confusion_matrix(y, predicted, labels=labels),
        labels=labels,
        calibration=calibration,
    )


@dataclass
class Calibration:
    """How far confidence is from accuracy: ECE over equal-width bins, and each bin's figures."""

    ece: float
    bins: list[dict[str, float]]  # lower, upper, count, confidence, accuracy (empty bins left out)


def measure_calibration(proba: np.ndarray, classes, y, n_bins: int = 15) -> Calibration:
    """Expected calibration error of the top-class confidence (Guo et al. 2017): the mean gap
    between confidence and accuracy per bin, weighted by the share of rows in the bin."""
    confidence = proba.max(axis=1)
    correct = np.asarray(classes)[proba.argmax(axis=1)] == np.asarray(y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        members = which == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(acc - conf)
        bins.append({"lower": float(edges[b]), "upper": float(edges[b + 1]),
                     "count": int(members.sum()), "confidence": conf, "accuracy": acc})  # fmt: skip
    return Calibration(float(ece), bins)


def plot_reliability(calibration: Calibration):
    """The reliability diagram: accuracy against confidence per bin, the diagonal is perfect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    centres = [(b["lower"] + b["upper"]) / 2 for b in calibration.bins]
    width = calibration.bins[0]["upper"] - calibration.bins[0]["lower"] if calibration.bins else 0
    axis.bar(centres, [b["accuracy"] for b in calibration.bins], width=width * 0.9, alpha=0.7)
    axis.plot([b["confidence"] for b in calibration.bins],
              [b["accuracy"] for b in calibration.bins], "o", color="black")  # fmt: skip
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_title(f"ECE {calibration.ece:.4f} ({len(calibration.bins)} non-empty bins)")
    figure.tight_layout()
    return figure


def plot_confusion(evaluation: Evaluation):
    """A confusion-matrix figure (rows: true, columns: predicted), row-normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = evaluation.confusion.astype(float)
    matrix /= np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    size = max(6, len(evaluation.labels) * 0.35)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(evaluation.labels))
    axis.set_xticks(ticks, evaluation.labels, rotation=90, fontsize=7)
    axis.set_yticks(ticks, evaluation.labels, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"weighted F1 {evaluation.metrics['f1_weighted']:.3f}")
    figure.tight_layout()
    return figure

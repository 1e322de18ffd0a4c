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


def evaluate_model(model, X: pd.DataFrame, y: pd.Series) -> Evaluation:
    """Weighted and macro F1, accuracy, the per-class report and the confusion matrix."""
    predicted = model.predict(X)
    labels = sorted(set(y) | set(predicted))
    return Evaluation(
        metrics={
            "f1_weighted": float(f1_score(y, predicted, average="weighted", zero_division=0)),
            "f1_macro": float(f1_score(y, predicted, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y, predicted)),
        },
        report=classification_report(y, predicted, output_dict=True, zero_division=0),
        confusion=confusion_matrix(y, predicted, labels=labels),
        labels=labels,
    )


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

"""Exact explanations of a linear model's answer: which n-grams pushed the predicted category,
and what separates it from the runner-up.

A linear classifier's margin for a class is the sum, over the document's features, of
coefficient x TF-IDF value, plus the intercept; an ensemble's margin is its members' mean.
Nothing is sampled, so the listed contributions, the rest and the intercept add up to the
margin exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from prodcat.training.compact import CalibratedLinearEnsemble, TemperatureScaled
from prodcat.training.vocabulary import NGramIndex


class NotExplainable(ValueError):
    """The model is not linear in its TF-IDF features (trees, a reduce step)."""


@dataclass(frozen=True)
class LinearWeights:
    """Coefficients as (n_features, members * classes), member-major, times scale when
    there is one (quantized weights), and the intercepts."""

    weights: np.ndarray
    intercepts: np.ndarray
    members: int
    classes: np.ndarray
    scale: np.ndarray | None = None

    def rows(self, columns: np.ndarray) -> np.ndarray:
        """The coefficients of some feature columns per class, averaged over members."""
        picked = np.asarray(self.weights[columns], dtype=np.float64)
        if self.scale is not None:
            picked *= self.scale
        # The class count given explicitly: a document with no known n-gram picks no column.
        return picked.reshape(len(columns), self.members, len(self.classes)).mean(axis=1)

    def intercept(self) -> np.ndarray:
        return self.intercepts.reshape(self.members, -1).mean(axis=0)


def find_linear_weights(classifier) -> LinearWeights:
    """The weights behind a classifier's margins; NotExplainable when it has none."""
    if isinstance(classifier, TemperatureScaled):
        classifier = classifier.estimator
    if isinstance(classifier, CalibratedLinearEnsemble):
        n_classes = len(classifier.classes)
        members = classifier.weights.shape[1] // n_classes
        return LinearWeights(classifier.weights, classifier.intercepts, members,
                             np.asarray(classifier.classes), classifier.weight_scale)  # fmt: skip
    coef = getattr(classifier, "coef_", None)
    if coef is None or coef.shape[0] != len(classifier.classes_):
        raise NotExplainable(f"{type(classifier).__name__} has no per-class coefficients")
    return LinearWeights(coef.T, np.broadcast_to(classifier.intercept_, coef.shape[0]), 1,
                         np.asarray(classifier.classes_))  # fmt: skip


def find_feature_names(after_cleaning: Pipeline) -> list[tuple[str, Sequence[str]]]:
    """(view, its n-grams in column order) for each view of the model's TF-IDF step: the
    packed TermList of an NGramIndex vocabulary as it is, not a copy in Python strings."""
    if after_cleaning.named_steps.get("reduce") not in (None, "passthrough"):
        raise NotExplainable("the model reduces its features (SVD): contributions are not n-grams")
    views = []
    for name, vectorizer, _ in after_cleaning.named_steps["tfidf"]._iter():
        vocabulary = getattr(vectorizer, "vocabulary_", None)
        if isinstance(vocabulary, NGramIndex):
            views.append((name, vocabulary.terms))
        else:
            views.append((name, vectorizer.get_feature_names_out()))
    return views


def explain_documents(
    after_cleaning: Pipeline, names: list[tuple[str, Sequence[str]]], docs: list[str], top: int
) -> list[dict]:
    """For each cleaned document: the predicted category's margin, its top n-grams with signed
    contributions, the rest and the intercept; and the same against the runner-up."""
    features = sp.csr_matrix(after_cleaning[:-1].transform(docs))
    proba = after_cleaning.steps[-1][1].predict_proba(features)
    linear = find_linear_weights(after_cleaning.steps[-1][1])
    return [explain_row(linear, features[i], proba[i], names, top) for i in range(len(docs))]


def explain_row(
    linear: LinearWeights,
    row: sp.csr_matrix,
    proba: np.ndarray,
    names: list[tuple[str, Sequence[str]]],
    top: int,
) -> dict:
    """One document's explanation, from its feature row and its probabilities."""
    # Only the row's own features' coefficients are read: a product with the whole weight
    # matrix would copy it (float32 to float64), tens of megabytes per call.
    per_class = row.data[:, None] * linear.rows(row.indices)
    intercepts = linear.intercept()
    margins = per_class.sum(axis=0) + intercepts
    ranking = np.argsort(-proba)
    best, second = ranking[0], ranking[1] if len(ranking) > 1 else ranking[0]
    explanation = describe(per_class[:, best], row.indices, names, top)
    explanation.update(
        category_code=str(linear.classes[best]), margin=float(margins[best]),
        intercept=float(intercepts[best]),
    )  # fmt: skip
    against = describe(per_class[:, best] - per_class[:, second], row.indices, names, top)
    against.update(category_code=str(linear.classes[second]), margin=float(margins[second]),
                   margin_gap=float(margins[best] - margins[second]),
                   intercept_gap=float(intercepts[best] - intercepts[second]))  # fmt: skip
    explanation["runner_up"] = against
    return explanation


def describe(
    contributions: np.ndarray, columns: np.ndarray, names: list[tuple[str, Sequence[str]]], top: int
) -> dict:
    """The top contributions by size (signed), named, and the sum of all the others."""
    order = np.argsort(-np.abs(contributions), kind="stable")[:top]
    listed = [{**name_column(int(columns[j]), names), "contribution": float(contributions[j])}
              for j in order]  # fmt: skip
    return {"features": listed, "other_features": float(contributions.sum() -
                                                        contributions[order].sum())}  # fmt: skip


def name_column(column: int, names: list[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """The view and n-gram of a column of the concatenated views."""
    for view, ngrams in names:
        if column < len(ngrams):
            return {"view": view, "ngram": str(ngrams[column])}
        column -= len(ngrams)
    raise IndexError("column beyond the model's features")

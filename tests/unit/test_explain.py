"""Explanations are exact: what they list, plus the rest and the intercept, is the margin."""

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from prodcat.training.compact import apply_temperature, compact_pipeline
from prodcat.training.explain import NotExplainable, explain_documents, find_feature_names
from prodcat.training.search import build_pipeline, make_estimator

from .test_features_and_training import tiny_catalogue

FIXTURES = Path(__file__).parents[1] / "fixtures"
TFIDF = {"char_analyzer": "char_wb", "char_ngrams": (2, 4), "char_min_df": 1,
         "cased_ngrams": (2, 3)}  # fmt: skip
DOCS = ["Jeu console manette 3", "piscine pompe eau", "livre roman", "unknown words only"]


def fitted(name: str, tfidf: dict = TFIDF):
    X, y = tiny_catalogue()
    X = X.assign(title=X["title"].str.title())
    pipeline = build_pipeline(make_estimator(name), {"lowercase": False}, tfidf).fit(X, y)
    return apply_temperature(compact_pipeline(pipeline), 0.7)


def member_margins(model, docs) -> np.ndarray:
    """The mean member margin, computed through the classifier's own decision function."""
    classifier = model.steps[-1][1]
    features = model[1:-1].transform(docs)
    if hasattr(classifier, "weights"):  # the compacted calibrated LinearSVC ensemble
        scores = classifier.decision_function(features)
        return scores.reshape(len(docs), -1, len(classifier.classes)).mean(axis=1)
    return classifier.estimator.decision_function(features)


@pytest.mark.parametrize("name", ["linear_svc", "sgd"])
def test_contributions_sum_to_the_margin_of_the_predicted_class(name):
    model = fitted(name)
    after = model[1:]
    docs = model[0].transform(pd.DataFrame({"title": DOCS, "description": ""})).tolist()
    explained = explain_documents(after, find_feature_names(after), docs, top=3)
    margins, classes = member_margins(model, docs), list(model.classes_)
    predicted = model.predict(pd.DataFrame({"title": DOCS, "description": ""}))
    for i, e in enumerate(explained):
        assert e["category_code"] == predicted[i]
        listed = sum(f["contribution"] for f in e["features"])
        assert e["intercept"] + listed + e["other_features"] == pytest.approx(e["margin"], abs=1e-5)
        assert e["margin"] == pytest.approx(margins[i, classes.index(e["category_code"])], abs=1e-4)
        runner = e["runner_up"]
        assert runner["category_code"] != e["category_code"]
        gap = runner["intercept_gap"] + sum(f["contribution"] for f in runner["features"])
        assert gap + runner["other_features"] == pytest.approx(runner["margin_gap"], abs=1e-5)
        assert len(e["features"]) <= 3
        sizes = [abs(f["contribution"]) for f in e["features"]]
        assert sizes == sorted(sizes, reverse=True)
    assert explained[0]["category_code"] == "40"
    assert {f["view"] for f in explained[0]["features"]} <= {"word", "char", "cased"}


def test_the_shape_views_bins_are_explained_and_add_up_to_the_margin():
    model = fitted("linear_svc", {**TFIDF, "shape_weight": 3.0})  # large: it must show
    after = model[1:]
    names = find_feature_names(after)
    assert names[-1][0] == "shape" and "brackets: no" in list(names[-1][1])
    docs = model[0].transform(pd.DataFrame({"title": DOCS, "description": ""})).tolist()
    explained = explain_documents(after, names, docs, top=50)
    margins, classes = member_margins(model, docs), list(model.classes_)
    for i, e in enumerate(explained):
        listed = sum(f["contribution"] for f in e["features"])
        assert e["intercept"] + listed + e["other_features"] == pytest.approx(e["margin"], abs=1e-5)
        assert e["margin"] == pytest.approx(margins[i, classes.index(e["category_code"])], abs=1e-4)
    shown = [f["ngram"] for e in explained for f in e["features"] if f["view"] == "shape"]
    assert "word in capitals: no" in shown and len(shown) >= 8 * len(DOCS) // 2


def test_the_top_ngrams_are_those_of_the_document():
    model = fitted("linear_svc")
    after = model[1:]
    doc = model[0].transform([("Piscine pompe", "")]).tolist()
    [e] = explain_documents(after, find_feature_names(after), doc, top=5)
    assert e["category_code"] == "50"
    for feature in e["features"]:
        text = doc[0] if feature["view"] == "cased" else doc[0].lower()
        assert feature["ngram"].strip() in text
    assert e["features"][0]["contribution"] > 0


def test_trees_on_svd_cannot_explain():
    X, y = tiny_catalogue()
    model = build_pipeline(make_estimator("xgboost"), None, {"char_min_df": 1}, reduce=5)
    model.set_params(clf__n_estimators=2).fit(X, y)
    with pytest.raises(NotExplainable, match="SVD"):
        find_feature_names(model[1:])


@pytest.mark.parametrize("kind", ["svc", "xgb"])
def test_models_pickled_before_the_training_package_still_load(kind):
    """Their pickles name prodcat.features, prodcat.inference and prodcat.train."""
    pickled = (FIXTURES / f"model-before-training-package-{kind}" / "model.pkl").read_bytes()
    assert b"prodcat.inference" in pickled and b"prodcat.training" not in pickled
    model = mlflow.sklearn.load_model(str(FIXTURES / f"model-before-training-package-{kind}"))
    rows = pd.DataFrame({"title": ["Console Jeu Manette", "Pompe Piscine Filtre"],
                         "description": ["", ""]})  # fmt: skip
    proba = model.predict_proba(rows)
    assert proba.shape == (2, 3)
    assert np.allclose(proba.sum(axis=1), 1)
    if kind == "svc":
        assert list(model.predict(rows)) == ["20", "30"]
        docs = model[0].transform(rows).tolist()
        explained = explain_documents(model[1:], find_feature_names(model[1:]), docs, top=2)
        assert [e["category_code"] for e in explained] == ["20", "30"]

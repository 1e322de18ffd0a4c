"""Training and serving feed the model the same input: a real model, real rows with descriptions.

Training and evaluation call predict_proba on a DataFrame; serving cleans the requests itself
(serving/budget.py, to measure them) and passes the cleaner's documents to the model less its
cleaning step. Both must give the same probabilities, to the last bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodcat.config import Settings
from prodcat.data.dataset import iter_source, load_dataset_spec
from prodcat.serving import model_store
from prodcat.serving.budget import Limits, clean_items
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.predictor import predict_items
from prodcat.serving.schemas import PredictRequest
from prodcat.training.search import SearchResult, fit_best


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """The rakuten-sample rows (517, with descriptions) of labels that have 3 rows or more."""
    settings = Settings()
    spec = load_dataset_spec(Settings(_env_file=None, data={"dataset": "rakuten-sample"}))
    rows = pd.concat(list(iter_source(spec, settings.data.raw_dir)), ignore_index=True)
    counts = rows["label"].value_counts()
    return rows[rows["label"].isin(counts[counts >= 3].index)].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(sample):
    """The fast profile's winner, refitted and compacted as training does (fit_best)."""
    search = SearchResult("linear_svc", {"C": 0.5}, 0.0)
    return fit_best(sample[["title", "description"]], sample["label"], search, "fast")


def test_the_sample_has_descriptions(sample):
    assert (sample["description"] != "").sum() > len(sample) / 2


def serve(model, sample) -> tuple[LoadedModel, list[PredictRequest], list[str]]:
    """The loaded model, the requests and the documents exactly as the API makes them."""
    loaded = LoadedModel(model, "1", "registry")
    requests = [PredictRequest(title=t, description=d or None)
                for t, d in zip(sample["title"], sample["description"], strict=True)]  # fmt: skip
    limits = Limits(10_000, 100_000, 10**9, len(requests))
    return loaded, requests, clean_items(loaded.cleaner, requests, limits, ("body", "items"))


def test_dataframe_and_serving_documents_give_identical_probabilities(sample, model):
    frame = model.predict_proba(sample[["title", "description"]])
    loaded, _, docs = serve(model, sample)
    assert np.array_equal(loaded.predict_documents(docs), frame)


def test_the_serving_answers_are_the_dataframe_rankings(sample, model):
    frame = model.predict_proba(sample[["title", "description"]])
    loaded, requests, docs = serve(model, sample)
    k = len(model.classes_)
    answers = predict_items(loaded, docs, requests, [k] * len(requests))
    for answer, probabilities in zip(answers, frame, strict=True):
        codes = [c["category_code"] for c in answer["top_k"]]
        order = np.argsort(-probabilities, kind="stable")
        assert codes[0] == model.classes_[order[0]] == answer["category_code"]
        served = {c["category_code"]: c["confidence"] for c in answer["top_k"]}
        expected = dict(zip(model.classes_, probabilities.round(6).tolist(), strict=True))
        assert served == expected


def test_a_description_changes_at_least_one_prediction(sample, model):
    with_descriptions = model.predict_proba(sample[["title", "description"]])
    titles_only = model.predict_proba(sample[["title"]].assign(description=""))
    assert (with_descriptions.argmax(axis=1) != titles_only.argmax(axis=1)).any()
    described = (sample["description"] != "").to_numpy()
    # Rows without a description are scored the same either way.
    assert np.array_equal(with_descriptions[~described], titles_only[~described])


def test_a_batch_larger_than_a_model_call_is_explained_in_the_items_order(
    sample, model, monkeypatch
):
    monkeypatch.setattr(model_store, "PREDICT_ROWS", 200)
    loaded, _, docs = serve(model, sample)
    assert len(docs) > 2 * model_store.PREDICT_ROWS  # three model calls
    marked = [i % 97 == 0 for i in range(len(docs))]
    probabilities, explanations = loaded.predict_and_explain(docs, marked, 3)
    assert np.array_equal(probabilities, loaded.after_cleaning.predict_proba(docs))
    assert [e is not None for e in explanations] == marked
    for i in np.flatnonzero(marked):
        assert explanations[i]["category_code"] == model.classes_[probabilities[i].argmax()]
        assert loaded.predict_and_explain([docs[i]], [True], 3)[1] == [explanations[i]]
    assert loaded.predict_documents([]).shape == (0, len(model.classes_))
    assert loaded.predict_and_explain([], [], 3)[1] == []

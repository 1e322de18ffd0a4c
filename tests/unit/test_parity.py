"""Training and serving feed the model the same input: a real model, real rows with descriptions.

Training and evaluation call predict_proba on a DataFrame; serving (predict_items) passes
(title, description) tuples. Both must give the same probabilities, to the last bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodcat.config import Settings
from prodcat.data.dataset import iter_source, load_dataset_spec
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.predictor import predict_items
from prodcat.serving.schemas import PredictRequest
from prodcat.train import SearchResult, fit_best


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
    search = SearchResult("linear_svc", {"clf__estimator__C": 0.5}, 0.0)
    return fit_best(sample[["title", "description"]], sample["label"], search, "fast")


def test_the_sample_has_descriptions(sample):
    assert (sample["description"] != "").sum() > len(sample) / 2


def test_dataframe_and_serving_tuples_give_identical_probabilities(sample, model):
    frame = model.predict_proba(sample[["title", "description"]])
    # The rows exactly as predict_items builds them from requests.
    requests = [PredictRequest(title=t, description=d or None)
                for t, d in zip(sample["title"], sample["description"], strict=True)]  # fmt: skip
    rows = [(r.title, r.description or "") for r in requests]
    assert np.array_equal(model.predict_proba(rows), frame)


def test_the_serving_answers_are_the_dataframe_rankings(sample, model):
    frame = model.predict_proba(sample[["title", "description"]])
    requests = [PredictRequest(title=t, description=d or None)
                for t, d in zip(sample["title"], sample["description"], strict=True)]  # fmt: skip
    k = len(model.classes_)
    answers = predict_items(LoadedModel(model, "1", "registry"), requests, [k] * len(requests))
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

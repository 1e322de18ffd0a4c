"""A small real model, trained in a fixture, served through the real app (no registry needed)."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel, ModelUnavailable
from prodcat.train import build_pipeline, make_estimator

VOCABULARY = {
    "10": "livre roman auteur poche edition",
    "40": "jeu console manette playstation nintendo",
    "2583": "piscine pompe filtration bache ronde",
}


@pytest.fixture(scope="session")
def small_model() -> LoadedModel:
    rows, labels = [], []
    for code, words in VOCABULARY.items():
        tokens = words.split()
        for i in range(30):
            rows.append({"title": f"{tokens[i % 5]} {tokens[(i + 1) % 5]} {i}", "description": ""})
            labels.append(code)
    pipeline = build_pipeline(make_estimator("linear_svc"), {"title_weight": 2},
                              {"char_ngrams": (2, 4), "char_min_df": 1})  # fmt: skip
    pipeline.fit(pd.DataFrame(rows), pd.Series(labels))
    pipeline.category_names_ = {"10": "Livres", "40": "Jeux vidéo"}
    metadata = {"metrics": {"eval_f1_weighted": 0.9}, "created": 1_700_000_000_000}
    return LoadedModel(pipeline, "7", "registry", metadata)


@pytest.fixture
def client(small_model) -> TestClient:
    with TestClient(create_app(loader=lambda settings: small_model, poll=False)) as test_client:
        yield test_client


@pytest.fixture
def client_without_model() -> TestClient:
    def no_model(settings):
        raise ModelUnavailable("no version of prodcat-classifier has the 'champion' alias yet")

    with TestClient(create_app(loader=no_model, poll=False)) as test_client:
        yield test_client

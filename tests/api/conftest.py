"""A small real model, trained in a fixture, served through the real app (no registry needed)."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from prodcat.config import Settings
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel, ModelUnavailable

from ..models import train_small_model


@pytest.fixture(scope="session")
def small_model() -> LoadedModel:
    metadata = {"metrics": {"eval_f1_weighted": 0.9}, "created": 1_700_000_000_000}
    return LoadedModel(train_small_model(), "7", "registry", metadata)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is


def settings_without_log() -> Settings:
    # The prediction log's writes to a real database are tested in tests/integration. Airflow
    # is a closed port: fuzzed POST /admin/retrain calls must never start real runs on a test
    # stack that happens to be up (tests/integration starts them on purpose).
    return Settings(api={"log_predictions": False}, airflow={"port": closed_port()})


@pytest.fixture
def client(small_model) -> TestClient:
    app = create_app(settings_without_log(), loader=lambda settings: small_model, poll=False)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def client_without_model() -> TestClient:
    def no_model(settings):
        raise ModelUnavailable("no version of prodcat-classifier has the 'champion' alias yet")

    app = create_app(settings_without_log(), loader=no_model, poll=False)
    with TestClient(app) as test_client:
        yield test_client

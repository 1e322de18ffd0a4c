"""The prediction log against a real PostgreSQL that goes away and comes back.

The test has its own PostgreSQL (own port and state directory), so stopping it does not
disturb the session's stack.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select

from prodcat.config import Settings
from prodcat.db.schema import prediction_log
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel
from prodcat.stack import Stack

from ..models import train_small_model, wait_until

pytestmark = pytest.mark.integration


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture(scope="module")
def own_postgres(settings):
    # Not under pytest's tmp_path: its 0700 parents keep the postgres user out.
    state = Path(tempfile.mkdtemp(prefix="prodcat-prediction-log-"))
    state.chmod(0o755)
    own = Settings(
        state_dir=state,
        postgres={"port": settings.postgres.port + 250},
        # Batches are only ever full ones (or the flush at shutdown): the counts are exact.
        api={"log_queue_size": 20, "log_batch_size": 5, "log_flush_seconds": 3600},
    )
    stack = Stack(own)
    stack.up(["postgres"])  # creates the roles and databases, applies the migrations
    engine = create_engine(own.postgres.url("app"), pool_pre_ping=True)
    yield own, stack, engine
    engine.dispose()
    stack.down()  # every program, then its own supervisord
    shutil.rmtree(state, ignore_errors=True)


def logged_rows(engine, model_version: str) -> int:
    """Rows logged by one test's model: the module's tests share the database, in any order."""
    query = select(func.count()).where(prediction_log.c.model_version == model_version)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    except Exception:
        return -1


def test_predictions_are_logged_and_served_while_the_database_is_down(own_postgres):
    own, stack, engine = own_postgres
    model = LoadedModel(train_small_model(), "7", "registry", {})
    app = create_app(own, loader=lambda s: model, poll=False)
    dropped_before = counter("prodcat_api_prediction_logs_dropped_total")

    with TestClient(app) as client:
        for i in range(5):
            response = client.post("/predict/", json={"title": f"console manette {i}",
                                                      "description": "<b>neuve</b>"})  # fmt: skip
            assert response.status_code == 200
        wait_until(lambda: logged_rows(engine, "7") == 5, what="the first 5 records")
        with engine.connect() as conn:
            row = conn.execute(
                select(prediction_log).where(prediction_log.c.model_version == "7")
                .order_by(prediction_log.c.id).limit(1)
            ).mappings().one()  # fmt: skip
        assert row["model_version"] == "7" and row["category_code"] == "40"
        assert 0 < row["confidence"] <= 1
        assert row["input_hash"] == hashlib.sha256(b"console manette 0\x1f<b>neuve</b>").hexdigest()
        assert row["title"].startswith("console manette")
        assert row["description_chars"] == len("<b>neuve</b>")

        engine.dispose()
        stack.down(["postgres"])
        failures = counter("prodcat_api_prediction_log_write_failures_total")
        for i in range(60):
            response = client.post("/predict/", json={"title": f"piscine ronde {i}"})
            assert response.status_code == 200, response.text  # served with the database down
            if i == 4:  # a full batch: the writer takes it, fails, and holds it
                wait_until(lambda: counter("prodcat_api_prediction_log_write_failures_total")
                           > failures, what="the writer to hold a failed batch")  # fmt: skip
        dropped = counter("prodcat_api_prediction_logs_dropped_total") - dropped_before
        # The writer holds one batch of 5 and 20 fit in the queue: exactly the rest is dropped.
        assert dropped == 60 - 5 - 20
        exposed = next(
            float(line.split()[-1]) for line in client.get("/metrics").text.splitlines()
            if line.startswith("prodcat_api_prediction_logs_dropped_total ")
        )  # fmt: skip
        assert exposed == dropped_before + dropped

        stack.up(["postgres"])
        expected = 5 + 60 - int(dropped)
        wait_until(lambda: logged_rows(engine, "7") == expected, timeout=60, what="the catch-up")
        assert client.post("/predict/", json={"title": "roman poche"}).status_code == 200
    assert logged_rows(engine, "7") == expected + 1  # flushed at shutdown


def test_awkward_text_is_stored_exactly_and_never_blocks_the_log(own_postgres):
    own, _, engine = own_postgres
    model = LoadedModel(train_small_model(), "8", "registry", {})
    with engine.connect() as conn:
        before = conn.execute(select(func.coalesce(func.max(prediction_log.c.id), 0))).scalar_one()
    dropped_before = counter("prodcat_api_prediction_logs_dropped_total")
    titles = ["tab\there, new\nline, back\\slash\r", "\\N", "nul\x00byte", "déjà vu 🎮 ½"]
    with TestClient(create_app(own, loader=lambda s: model, poll=False)) as client:
        for title in titles:
            assert client.post("/predict/", json={"title": title}).status_code == 200
        lone_surrogate = b'{"title": "lone \\ud800 surrogate", "description": "x"}'
        response = client.post("/predict/", content=lone_surrogate,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 200, response.text
    private = own.model_copy(update={"api": own.api.model_copy(update={"log_raw_text": False})})
    with TestClient(create_app(private, loader=lambda s: model, poll=False)) as client:
        assert client.post("/predict/", json={"title": "secret"}).status_code == 200

    with engine.connect() as conn:
        rows = conn.execute(
            select(prediction_log).where(prediction_log.c.id > before).order_by("id")
        ).mappings().all()  # fmt: skip
    stored = [r["title"] for r in rows]
    expected = [*titles[:2], "nul\ufffdbyte", titles[3], "lone \ufffd surrogate", None]
    assert stored == expected
    assert [r["title_chars"] for r in rows] == [len(t) for t in titles] + [16, 6]
    assert [r["description"] for r in rows] == ["", "", "", "", "x", None]
    assert rows[-1]["input_hash"] == hashlib.sha256(b"secret\x1f").hexdigest()
    assert counter("prodcat_api_prediction_logs_dropped_total") == dropped_before

"""Operating the catalogue on the real stack: listings ingested without a label are scored by
the batch_predict DAG (a rerun scores nothing new), doubtful answers queue for review, and a
correction sent through the API changes the label the next training uses."""

from __future__ import annotations

import uuid

import pendulum
import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from fastapi.testclient import TestClient
from sqlalchemy import text

from prodcat.config import get_settings
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.training_set import count_backlog, load_evaluation_frame, load_products
from prodcat.db import get_engine
from prodcat.serving.app import create_app
from prodcat.serving.model_store import LoadedModel
from prodcat.training.registry import SNAPSHOT_FEEDBACK_TAG, get_client

from ..models import (
    ROOT,
    register_small_models,
    train_small_model,
    wait_until,
    write_unlabelled_dataset,
)

pytestmark = pytest.mark.integration
ROWS, UNLABELLED_EVERY = 3000, 3


@pytest.fixture
def catalogue(settings, tmp_path) -> dict:
    """A dataset of its own (each test's: they run in any order) of real titles where every
    third row has no label, ingested in one batch, and a champion of its own model name."""
    folder = tmp_path
    description = write_unlabelled_dataset(settings.data.raw_dir, folder, ROWS, UNLABELLED_EVERY)
    name = yaml.safe_load(description.read_text())["name"]
    env = {"PRODCAT_DATA__DATASET": str(description),
           "PRODCAT_DATA__RAW_DIR": str(folder), "PRODCAT_DATA__BATCH_SIZE": str(ROWS),
           "PRODCAT_DATA__EVAL_SIZE": "200", "PRODCAT_MLFLOW__MODEL_NAME": f"prodcat-{name}",
           "PRODCAT_REVIEW__CONFIDENCE_THRESHOLD": "0.6",
           "PRODCAT_BATCH_PREDICT__CHUNK_ROWS": "300"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        get_settings.cache_clear()  # the DAG's tasks read these, as Airflow's workers would
        ours = get_settings()
        batch = ingest_next_batch("ops-1", settings=ours)
        version = register_small_models(ours, ours.mlflow.model_name, 1)[0]
        yield {"settings": ours, "dataset": name, "batch": batch, "version": version}
    get_settings.cache_clear()


def query(settings, sql: str, **params) -> list:
    with get_engine(settings).connect() as conn:
        return conn.execute(text(sql), params).all()


def run_batch_predict(when: str) -> dict:
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["batch_predict"]
    run = dag.test(logical_date=pendulum.parse(when))
    assert run.state == "success"
    return run.get_task_instance("score_listings").xcom_pull(task_ids="score_listings")


def test_unlabelled_listings_are_kept_apart_from_training(catalogue):
    ours, dataset = catalogue["settings"], catalogue["dataset"]
    unlabelled = query(ours, "select count(*) from products where dataset = :d "
                       "and label_code is null", d=dataset)[0][0]  # fmt: skip
    assert unlabelled == ROWS // UNLABELLED_EVERY  # none rejected, none held out
    assert query(ours, "select count(*) from rejected_rows where dataset = :d "
                 "and reason = 'missing_label'", d=dataset)[0][0] == 0  # fmt: skip
    training = load_products(ours, dataset)
    assert training["label_code"].notna().all() and len(training) + unlabelled + 200 == ROWS
    held_out = load_evaluation_frame(ours, dataset)["label_code"]
    assert held_out.notna().all() and (held_out != "").all()


def test_batch_predict_scores_every_unlabelled_listing_once_per_version(catalogue):
    ours, dataset, version = catalogue["settings"], catalogue["dataset"], catalogue["version"]
    first = run_batch_predict("2026-12-01T02:00:00+00:00")
    assert first["model_version"] == version and first["scored"] == ROWS // UNLABELLED_EVERY
    rows = query(ours, "select product_id, category_code, confidence, top3 from "
                 "batch_predictions where dataset = :d and model_version = :v",
                 d=dataset, v=version)  # fmt: skip
    assert len(rows) == first["scored"]
    for _, code, confidence, top3 in rows[:50]:
        assert top3[0] == {"category_code": code, "confidence": round(confidence, 6)}
        assert len(top3) == 3 and top3[0]["confidence"] >= top3[1]["confidence"]
    queued = query(ours, "select count(*) from review_queue where dataset = :d and "
                   "source = 'batch' and confidence < 0.6", d=dataset)[0][0]  # fmt: skip
    assert queued == first["queued_for_review"] > 0

    again = run_batch_predict("2026-12-02T02:00:00+00:00")
    assert again == {"model_version": version, "scored": 0, "queued_for_review": 0}
    assert query(ours, "select count(*) from batch_predictions where dataset = :d",
                 d=dataset)[0][0] == first["scored"]  # fmt: skip


@pytest.fixture
def reviewer(catalogue):
    ours = catalogue["settings"]
    app = create_app(ours, loader=lambda s: LoadedModel(train_small_model(), "1", "registry"),
                     poll=False)  # fmt: skip
    token = ours.review.token.get_secret_value()
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_corrections_through_the_api_change_what_the_next_training_uses(catalogue, reviewer):
    ours, dataset = catalogue["settings"], catalogue["dataset"]
    run_batch_predict("2026-12-03T02:00:00+00:00")
    queue = reviewer.get("/review", params={"limit": 1000}).json()
    assert queue and [q["confidence"] for q in queue] == sorted(q["confidence"] for q in queue)
    # The queue is shared with other tests' datasets: this one's doubtful answer, from its table.
    sql = "select id, product_id from review_queue where dataset = :d order by confidence limit 1"
    review_id, product_id = query(ours, sql, d=dataset)[0]
    doubtful = {"id": review_id, "product_id": product_id}
    labelled = load_products(ours, dataset).iloc[0]
    new_code = "2583" if labelled["label_code"] != "2583" else "10"
    backlog = count_backlog(catalogue["batch"].batch_id, ours)

    for body in ({"prediction_id": doubtful["id"], "category_code": "1280", "reviewer": "ana"},
                 {"product_id": labelled["product_id"], "category_code": new_code,
                  "reviewer": "bob"}):  # fmt: skip
        answer = reviewer.post("/feedback", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["sent_by"] == body["reviewer"]

    training = load_products(ours, dataset).set_index("product_id")
    assert training.loc[doubtful["product_id"], "label_code"] == "1280"  # was awaiting one
    assert training.loc[labelled["product_id"], "label_code"] == new_code
    assert int(training["corrected"].sum()) == 2
    assert count_backlog(catalogue["batch"].batch_id, ours) == backlog + 2
    closed = query(ours, "select reviewed_at is not null from review_queue where id = :i",
                   i=doubtful["id"])  # fmt: skip
    assert closed == [(True,)]  # no longer listed by GET /review

    from prodcat.training.steps import train_challenger

    trained = train_challenger(settings=ours)
    run = get_client(ours).get_run(trained["run_id"])
    assert run.data.metrics["training_corrections"] == 2
    tags = get_client(ours).get_model_version(ours.mlflow.model_name, trained["version"]).tags
    assert int(tags[SNAPSHOT_FEEDBACK_TAG]) > 0


def test_feedback_names_what_does_not_exist_and_needs_its_token(catalogue, reviewer):
    missing = reviewer.post(
        "/feedback",
        json={"product_id": "no-such-listing", "category_code": "10", "reviewer": "ana"},
    )
    assert missing.status_code == 404 and "no-such-listing" in missing.json()["detail"]
    any_listing = load_products(catalogue["settings"], catalogue["dataset"]).iloc[0]
    unknown = reviewer.post(
        "/feedback",
        json={"product_id": any_listing["product_id"], "category_code": "99999", "reviewer": "ana"},
    )
    assert unknown.status_code == 404 and "99999" in unknown.json()["detail"]
    no_token = reviewer.get("/review", headers={"Authorization": "Bearer wrong"})
    assert no_token.status_code == 401


def test_doubtful_api_answers_queue_with_their_text_and_train_once_corrected(catalogue):
    ours = catalogue["settings"].model_copy(deep=True)
    ours.review.confidence_threshold = 1.0  # every answer is doubtful enough
    ours.api.log_flush_seconds = 0.2
    title = f"piscine {uuid.uuid4().hex[:6]}"
    app = create_app(ours, loader=lambda s: LoadedModel(train_small_model(), "1", "registry"),
                     poll=False)  # fmt: skip
    headers = {"Authorization": f"Bearer {ours.review.token.get_secret_value()}"}
    with TestClient(app, headers=headers) as client:
        assert client.post("/predict/", json={"title": title}).status_code == 200
        # Found in the table: GET /review lists the lowest confidences first, and earlier
        # runs of these tests left many lower ones.
        sql = "select id, source, product_id from review_queue where title = :t"
        found = wait_until(lambda: query(ours, sql, t=title), what="the queued answer")
        review_id, source, product_id = found[0]
        assert source == "api" and product_id is None
        sent = client.post(
            "/feedback",
            json={"prediction_id": review_id, "category_code": "2583", "reviewer": "ana"},
        )
        assert sent.status_code == 201, sent.text
    training = load_products(ours, catalogue["dataset"])
    row = training[training["title"] == title]
    assert row["label_code"].tolist() == ["2583"] and row["corrected"].all()

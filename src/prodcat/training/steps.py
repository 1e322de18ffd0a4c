"""The retraining loop: decide, train a challenger, evaluate it, gate it, promote it.

Each step takes and returns IDs (run id, model version), never data, so each can be one
Airflow task and also be called from the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import cloudpickle
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from prodcat.config import Settings, get_settings
from prodcat.data.dataset import load_dataset_spec
from prodcat.data.training_set import (
    count_backlog,
    count_training_data,
    load_category_names,
    load_evaluation_set,
    load_products,
)
from prodcat.integrity import tag_artifact_digest
from prodcat.metrics import incr_metric, record_timing, set_gauge
from prodcat.training.evaluate import evaluate_model, plot_confusion, plot_reliability
from prodcat.training.features import count_features
from prodcat.training.gate import gate_challenger
from prodcat.training.registry import (
    SNAPSHOT_BATCH_TAG,
    SNAPSHOT_FEEDBACK_TAG,
    SNAPSHOT_IDS_TAG,
    SNAPSHOT_ROWS_TAG,
    get_champion,
    get_client,
    get_snapshot_batch,
    get_snapshot_feedback,
    load_version,
    promote_version,
    set_challenger,
    use_mlflow,
)
from prodcat.training.search import SearchResult, search_candidates
from prodcat.training.stream import refit_mode, refit_winner, sample_rows

log = logging.getLogger(__name__)
# The MLflow run tag holding the Airflow run id that trained it: a retry finds its version.
RUN_KEY_TAG = "prodcat.run_key"
# Decisions that skip training (the run still succeeds).
SKIP_REASONS = frozenset({"healthy", "too_few_rows", "no_evaluation_set"})


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str
    champion_version: str | None
    champion_recent_f1: float | None
    backlog: int

    def as_dict(self) -> dict:
        return asdict(self)


def check_retraining(
    settings: Settings | None = None, requested: str | None = None
) -> RetrainDecision:
    """Retrain when there is no champion, when asked to (drift, manual), when its F1 on fresh
    rows is low, or when the backlog is large; skip while data is missing, saying why."""
    settings = settings or get_settings()
    champion = get_champion(settings)
    if champion is not None:
        set_gauge("train.champion_version", int(champion.version))
    snapshot = get_snapshot_batch(champion)
    backlog = count_backlog(snapshot, settings, get_snapshot_feedback(champion))
    set_gauge("ingest.backlog_rows", backlog)
    reason = find_missing_data(settings)
    recent_f1 = None
    if reason is None and champion is not None:
        recent_f1 = score_fresh_rows(champion, snapshot, settings)
    if reason is None:
        reason = choose_reason(champion, requested, recent_f1, backlog, settings)
    retrain = reason not in SKIP_REASONS
    decision = RetrainDecision(
        retrain, reason, champion.version if champion else None, recent_f1, backlog
    )
    if retrain:
        incr_metric(f"train.trigger.{reason}")
    log.info(
        "retraining %s: %s", "needed" if retrain else "skipped", json.dumps(decision.as_dict())
    )
    return decision


def find_missing_data(settings: Settings) -> str | None:
    """Why training cannot start yet (no evaluation set, too few rows), or None."""
    dataset = load_dataset_spec(settings).name
    rows, held_out = count_training_data(settings, dataset)
    if held_out == 0:
        log.warning("%s has no evaluation set: set PRODCAT_DATA__EVAL_SIZE above 0 and run "
                    "reset_data; no model is trained without one", dataset)  # fmt: skip
        return "no_evaluation_set"
    if rows < settings.training.min_rows:
        log.info("%s has %d labelled rows, fewer than PRODCAT_TRAINING__MIN_ROWS (%d): "
                 "waiting for more", dataset, rows, settings.training.min_rows)  # fmt: skip
        return "too_few_rows"
    return None


def choose_reason(champion, requested, recent_f1, backlog: int, settings: Settings) -> str:
    """The first reason to retrain that holds, or "healthy"."""
    if champion is None:
        return "no_champion"
    if requested:
        return requested
    if recent_f1 is not None and recent_f1 < settings.training.f1_threshold:
        return "low_f1"
    if backlog >= settings.training.backlog_threshold:
        return "backlog"
    return "healthy"


def score_fresh_rows(champion, snapshot: int, settings: Settings) -> float | None:
    """The champion's weighted F1 on rows ingested after its snapshot (None when there are none)."""
    fresh = load_products(settings, load_dataset_spec(settings).name, snapshot)
    if fresh.empty:
        return None
    predicted = load_version(champion.version, settings).predict(fresh[["title", "description"]])
    recent_f1 = float(f1_score(fresh["label_code"], predicted, average="weighted"))
    set_gauge("train.champion_f1", recent_f1)
    return recent_f1


def choose_branch(
    rollback: bool = False, reason: str | None = None, settings: Settings | None = None
) -> str:
    """The ml_pipeline task to run next: rollback, train or skip_training."""
    if rollback:
        return "rollback"
    return "train" if check_retraining(settings, reason).retrain else "skip_training"


def train_challenger(
    logical_date: datetime | None = None,
    settings: Settings | None = None,
    shuffle_labels: bool = False,
    run_key: str | None = None,
) -> dict[str, str]:
    """Search, refit the best candidate, log it to MLflow and register a new version.

    With a run_key (the Airflow run id), a retry after a crash reuses the version that key
    already registered instead of registering a second one.
    """
    import mlflow

    settings = settings or get_settings()
    if run_key and (done := find_trained_version(run_key, settings)) is not None:
        log.info("run %s already registered version %s: reusing it", run_key, done["version"])
        return done
    dataset = load_dataset_spec(settings).name
    data = load_training_rows(settings, dataset)
    X, y = data[["title", "description"]], data["label_code"]
    if shuffle_labels:  # a deliberately useless model, for testing the gate
        y = y.sample(frac=1.0, random_state=0).set_axis(y.index)
    use_mlflow(settings)
    mlflow.set_experiment(settings.mlflow.experiment)
    tags = {**_snapshot(data), "dataset": dataset, "shuffled_labels": str(shuffle_labels)}
    if run_key:
        tags |= {RUN_KEY_TAG: run_key, "logical_date": str(logical_date)}
    started = time.perf_counter()
    run_name = f"train-{logical_date:%Y%m%dT%H%M}" if logical_date else None
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        search, model = search_and_refit(X, y, settings)
        model.category_names_ = load_category_names(settings)  # travels with the model to the API
        seconds = time.perf_counter() - started
        mlflow.log_metric("training_corrections", int(data["corrected"].sum()))
        version = log_and_register(model, search, seconds, X, settings)
    tag_snapshot(version, tags, settings)
    record_timing("train.duration", seconds)
    log.info("registered version %s (run %s) after %.0fs", version, run.info.run_id, seconds)
    return {"run_id": run.info.run_id, "version": version}


def search_and_refit(
    X: pd.DataFrame, y: pd.Series, settings: Settings
) -> tuple[SearchResult, Pipeline]:
    """Search on a stratified sample of at most search_rows rows, then refit the winner on
    every row; returns the search's result and the model."""
    profile = settings.training.profile
    sample = sample_rows(y, settings.training.search_rows)
    log.info("searching with profile %s on %d of %d rows", profile, len(sample), len(X))
    search = search_candidates(X.iloc[sample], y.iloc[sample], profile)
    log.info("search done in %.0f s: %s wins (CV weighted F1 %.4f); refitting on all %d rows",
             search.seconds, search.best_name, search.best_score, len(X))  # fmt: skip
    started = time.perf_counter()
    model = refit_winner(X, y, search, profile, sample)
    log.info("refit done in %.0f s", time.perf_counter() - started)
    return search, model


def load_training_rows(settings: Settings, dataset: str) -> pd.DataFrame:
    """The rows to train on; no model is trained before the evaluation set exists."""
    if count_training_data(settings, dataset)[1] == 0:
        raise ValueError(
            f"dataset {dataset} has no evaluation set: no model is trained before one exists "
            "(the first ingestion carves it, or reset_data)"
        )
    data = load_products(settings, dataset)
    if data["label_code"].nunique() < 2:
        raise ValueError(f"dataset {dataset} has {len(data)} labelled rows: too few to train on")
    return data


def log_and_register(model, search, seconds: float, X: pd.DataFrame, settings: Settings) -> str:
    """Log the search and the model in the active MLflow run; register it; returns the version."""
    import mlflow
    import mlflow.sklearn

    mlflow.log_params({"profile": settings.training.profile, "best_candidate": search.best_name,
                       "refit": refit_mode(search, search.rows, len(X)),
                       **{k: str(v) for k, v in search.best_params.items()}})  # fmt: skip
    mlflow.log_metrics({"cv_f1_weighted": search.best_score, "training_seconds": seconds,
                        "training_rows": len(X), "search_rows": search.rows,
                        "model_size_bytes": measure_model_size(model),
                        "model_features": count_features(model)})  # fmt: skip
    mlflow.log_dict({"candidates": search.candidates}, "search/cv_results.json")
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name=settings.mlflow.model_name,
        input_example=X.head(2), pyfunc_predict_fn="predict_proba",
        # skops refuses our own transformer classes; the registry is our own, so trusted.
        serialization_format="cloudpickle",
    )  # fmt: skip
    return str(info.registered_model_version)


def measure_model_size(model: Pipeline) -> int:
    """Bytes of the model as it is logged (mlflow.sklearn's model.pkl), counted, not held."""
    counter = ByteCounter()
    cloudpickle.dump(model, counter, protocol=pickle.DEFAULT_PROTOCOL)  # as mlflow dumps it
    return counter.size


class ByteCounter(io.RawIOBase):
    """A writable file that only counts what is written to it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        self.size += size
        return size


def tag_snapshot(version: str, run_tags: dict[str, str], settings: Settings) -> None:
    """Copy the training snapshot's tags onto the registered version, and record the digest
    of its stored files (idempotent)."""
    client = get_client(settings)
    for key in (SNAPSHOT_ROWS_TAG, SNAPSHOT_BATCH_TAG, SNAPSHOT_IDS_TAG, SNAPSHOT_FEEDBACK_TAG):
        if key in run_tags:  # runs from before corrections existed have no feedback tag
            client.set_model_version_tag(settings.mlflow.model_name, version, key, run_tags[key])
    tag_artifact_digest(version, settings)


def find_trained_version(run_key: str, settings: Settings) -> dict[str, str] | None:
    """The version a training run with this key registered, if any (its tags completed)."""
    client = get_client(settings)
    for run in find_training_runs(run_key, settings):
        found = client.search_model_versions(
            f"name = '{settings.mlflow.model_name}' and run_id = '{run.info.run_id}'"
        )
        if found:
            version = str(max(int(v.version) for v in found))
            tag_snapshot(version, run.data.tags, settings)
            return {"run_id": run.info.run_id, "version": version}
    return None


def find_training_runs(run_key: str, settings: Settings) -> list:
    """The MLflow training runs tagged with this run key: the attempts of one Airflow task."""
    client = get_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'"
    )


def _snapshot(data: pd.DataFrame) -> dict[str, str]:
    ids = "\n".join(sorted(data["product_id"]))
    return {
        SNAPSHOT_ROWS_TAG: str(len(data)),
        SNAPSHOT_BATCH_TAG: str(int(data["batch_id"].max())),
        SNAPSHOT_IDS_TAG: hashlib.sha256(ids.encode()).hexdigest(),
        SNAPSHOT_FEEDBACK_TAG: str(int(data["feedback_id"].max())),
    }


def evaluate_challenger(
    run_id: str, version: str, settings: Settings | None = None
) -> dict[str, float]:
    """Score a version on the evaluation set and log its metrics (F1, ECE), the report, the
    confusion matrix and the reliability diagram."""
    import mlflow

    settings = settings or get_settings()
    dataset = load_dataset_spec(settings).name
    X, y = load_evaluation_set(settings, dataset)
    if X.empty:
        raise ValueError(
            f"the evaluation set of {dataset} is empty: reset_data carves it "
            "(PRODCAT_DATA__EVAL_SIZE rows); run the reset_data DAG or `prodcat data reset`"
        )
    evaluation = evaluate_model(load_version(version, settings), X, y)
    use_mlflow(settings)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"eval_{k}": v for k, v in evaluation.metrics.items()})
        mlflow.log_dict(evaluation.report, "evaluation/classification_report.json")
        mlflow.log_figure(plot_confusion(evaluation), "evaluation/confusion_matrix.png")
        if evaluation.calibration is not None:
            mlflow.log_dict(asdict(evaluation.calibration), "evaluation/reliability.json")
            mlflow.log_figure(plot_reliability(evaluation.calibration),
                              "evaluation/reliability_diagram.png")  # fmt: skip
    set_gauge("train.challenger_f1", evaluation.metrics["f1_weighted"])
    set_gauge(f"train.eval_f1.{version}", evaluation.metrics["f1_weighted"])
    log.info("version %s on the evaluation set: %s", version, evaluation.metrics)
    return evaluation.metrics


def gate_version(version: str, settings: Settings | None = None) -> dict:
    """The quality gate for one version; the decision and its reasons are tagged in MLflow."""
    settings = settings or get_settings()
    decision = gate_challenger(version, load_dataset_spec(settings).name, settings)
    incr_metric(f"train.gate.{'promoted' if decision.promote else 'refused'}")
    return decision.as_dict()


def promote_if_approved(decision: dict, settings: Settings | None = None) -> str | None:
    """Promote the gated version when the gate approved it; returns the new champion or None."""
    settings = settings or get_settings()
    if not decision["promote"]:
        log.info("version %s stays a challenger: %s", decision["challenger"], decision["reason"])
        if decision["challenger_f1"] >= settings.training.f1_floor:
            set_challenger(decision["challenger"], settings)  # shadowed on live traffic
        return None
    promote_version(decision["challenger"], settings)
    return decision["challenger"]

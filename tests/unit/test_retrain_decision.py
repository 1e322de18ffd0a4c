"""The retraining decision without services: our own data-access functions are replaced by small
fakes that return what the database and the registry would (the real ones are exercised in
tests/integration/test_training.py). What is checked is the rule and what it logs and counts."""

from __future__ import annotations

import json
import logging

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from prodcat.config import Settings
from prodcat.training import steps as retrain
from prodcat.training.registry import SNAPSHOT_BATCH_TAG, SNAPSHOT_FEEDBACK_TAG
from prodcat.training.steps import choose_reason, find_missing_data

# Not the default dataset: the settings given must be the ones used, all the way down.
SETTINGS = Settings(
    _env_file=None,
    data={"dataset": "rakuten-sample"},
    training={"f1_threshold": 0.7, "backlog_threshold": 100, "min_rows": 50},
)


def version(number: str = "3", snapshot: int | None = 12, feedback: int = 0) -> ModelVersion:
    tags = [] if snapshot is None else [ModelVersionTag(SNAPSHOT_BATCH_TAG, str(snapshot))]
    tags += [ModelVersionTag(SNAPSHOT_FEEDBACK_TAG, str(feedback))] if feedback else []
    return ModelVersion("prodcat-classifier", number, 0, tags=tags)


@pytest.mark.parametrize(
    ("champion", "requested", "recent_f1", "backlog", "reason"),
    [
        (None, "drift", 0.1, 10**6, "no_champion"),
        (version(), "drift", 0.1, 10**6, "drift"),
        (version(), "manual", None, 0, "manual"),
        (version(), None, 0.1, 10**6, "low_f1"),
        (version(), None, 0.6999, 0, "low_f1"),
        (version(), None, 0.7, 0, "healthy"),  # the threshold itself is healthy
        (version(), None, None, 99, "healthy"),
        (version(), None, None, 100, "backlog"),  # the threshold itself triggers
        (version(), None, 0.9, 10**6, "backlog"),
        (version(), "", 0.9, 0, "healthy"),
    ],
)
def test_the_first_reason_that_holds_wins(champion, requested, recent_f1, backlog, reason):
    assert choose_reason(champion, requested, recent_f1, backlog, SETTINGS) == reason


class FakeStore:
    """What the database and the registry hold, and what the decision sent to StatsD."""

    def __init__(self, champion, rows=500, held_out=100, backlog=0, recent_f1=0.9):
        self.champion, self.counts = champion, (rows, held_out)
        self.backlog, self.recent_f1 = backlog, recent_f1
        self.asked: dict[str, object] = {}
        self.gauges: dict[str, float] = {}
        self.counters: list[str] = []

    def install(self, monkeypatch) -> FakeStore:
        def count_training_data(settings, dataset):
            assert settings is SETTINGS
            self.asked["dataset"] = dataset
            return self.counts

        def count_backlog(snapshot, settings, since_feedback_id):
            assert settings is SETTINGS
            self.asked["backlog_since"] = snapshot
            self.asked["feedback_since"] = since_feedback_id
            return self.backlog

        def score_fresh_rows(champion, snapshot, settings):
            assert settings is SETTINGS
            self.asked["scored"] = (champion.version, snapshot)
            return self.recent_f1

        def get_champion(settings):
            assert settings is SETTINGS
            return self.champion

        for name, fake in {
            "get_champion": get_champion,
            "count_training_data": count_training_data,
            "count_backlog": count_backlog,
            "score_fresh_rows": score_fresh_rows,
            "set_gauge": self.gauges.__setitem__,
            "incr_metric": self.counters.append,
        }.items():
            monkeypatch.setattr(retrain, name, fake)
        return self


def logged_decision(caplog) -> tuple[str, dict]:
    message = next(m for m in caplog.messages if m.startswith("retraining "))
    verdict, _, payload = message.removeprefix("retraining ").partition(": ")
    return verdict, json.loads(payload)


@pytest.mark.parametrize(
    ("store", "requested", "reason"),
    [
        (dict(champion=None), None, "no_champion"),
        (dict(champion=version(), recent_f1=0.5), None, "low_f1"),
        (dict(champion=version(), backlog=100), None, "backlog"),
        (dict(champion=version()), "drift", "drift"),
    ],
)
def test_each_trigger_is_decided_logged_and_counted(monkeypatch, caplog, store, requested, reason):
    fake = FakeStore(**store).install(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prodcat.training.steps"):
        decision = retrain.check_retraining(SETTINGS, requested)
    assert decision.retrain is True and decision.reason == reason
    assert fake.counters == [f"train.trigger.{reason}"]
    verdict, logged = logged_decision(caplog)
    assert verdict == "needed" and logged == decision.as_dict()


def test_a_healthy_champion_is_scored_on_fresh_rows_and_training_skipped(monkeypatch, caplog):
    champion = version("4", snapshot=12, feedback=7)
    fake = FakeStore(champion, backlog=99, recent_f1=0.8).install(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prodcat.training.steps"):
        decision = retrain.check_retraining(SETTINGS)
    assert decision.as_dict() == {"retrain": False, "reason": "healthy", "champion_version": "4",
                                  "champion_recent_f1": 0.8, "backlog": 99}  # fmt: skip
    # Corrections sent after the champion's (feedback id 7) count toward the backlog.
    assert fake.asked == {"dataset": "rakuten-sample", "backlog_since": 12, "feedback_since": 7,
                          "scored": ("4", 12)}  # fmt: skip
    assert fake.gauges == {"train.champion_version": 4, "ingest.backlog_rows": 99}
    assert fake.counters == []
    assert logged_decision(caplog) == ("skipped", decision.as_dict())


def test_without_a_champion_the_backlog_counts_every_batch(monkeypatch):
    fake = FakeStore(None, backlog=7).install(monkeypatch)
    decision = retrain.check_retraining(SETTINGS)
    assert fake.asked["backlog_since"] == 0 and "scored" not in fake.asked
    assert decision.champion_version is None and decision.champion_recent_f1 is None
    assert decision.backlog == 7 and fake.gauges == {"ingest.backlog_rows": 7}


@pytest.mark.parametrize(
    ("counts", "reason"),
    [((500, 0), "no_evaluation_set"), ((49, 100), "too_few_rows"), ((0, 0), "no_evaluation_set")],
)
def test_missing_data_skips_before_anything_is_scored(monkeypatch, counts, reason):
    fake = FakeStore(version(), rows=counts[0], held_out=counts[1], recent_f1=0.1)
    fake.install(monkeypatch)
    decision = retrain.check_retraining(SETTINGS, "drift")
    assert (decision.retrain, decision.reason) == (False, reason)
    assert "scored" not in fake.asked and fake.counters == []


def test_missing_data_says_why(monkeypatch, caplog):
    FakeStore(None, rows=50, held_out=1).install(monkeypatch)
    assert find_missing_data(SETTINGS) is None  # min_rows itself is enough
    FakeStore(None, rows=49, held_out=1).install(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prodcat.training.steps"):
        assert find_missing_data(SETTINGS) == "too_few_rows"
    FakeStore(None, rows=10**6, held_out=0).install(monkeypatch)
    with caplog.at_level(logging.INFO, logger="prodcat.training.steps"):
        assert find_missing_data(SETTINGS) == "no_evaluation_set"
    assert caplog.messages == [
        "rakuten-sample has 49 labelled rows, fewer than PRODCAT_TRAINING__MIN_ROWS (50): "
        "waiting for more",
        "rakuten-sample has no evaluation set: set PRODCAT_DATA__EVAL_SIZE above 0 and run "
        "reset_data; no model is trained without one",
    ]
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]


def test_the_pipeline_branches_on_the_decision_and_rollback_comes_first(monkeypatch):
    FakeStore(None).install(monkeypatch)
    assert retrain.choose_branch(rollback=True, settings=SETTINGS) == "rollback"
    assert retrain.choose_branch(settings=SETTINGS) == "train"
    FakeStore(version(), recent_f1=0.9).install(monkeypatch)
    assert retrain.choose_branch(settings=SETTINGS) == "skip_training"
    assert retrain.choose_branch(False, "drift", SETTINGS) == "train"

"""Moving the champion and previous aliases, with our get_client() returning a small in-memory
registry (the real MLflow is used in tests/integration/test_training.py)."""

from __future__ import annotations

import pytest
from mlflow.entities.model_registry import (
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)

from prodcat.config import Settings
from prodcat.training import registry
from prodcat.training.registry import (
    SNAPSHOT_BATCH_TAG,
    get_alias_version,
    get_snapshot_batch,
    is_missing,
    promote_version,
    rollback_champion,
)

SETTINGS = Settings(_env_file=None, mlflow={"model_name": "m"})


class FakeRegistry:
    """Aliases of registered models, answering as MLflow does when one is missing."""

    def __init__(self, aliases: dict[str, str] | None = None, down: bool = False):
        self.aliases, self.down = dict(aliases or {}), down
        self.calls: list[tuple[str, str, str]] = []
        self.tags: dict[str, str] = {}

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        assert name == "m", name  # the configured model's, no other
        if self.down:
            raise MlflowException("registry unavailable", error_code=INTERNAL_ERROR)
        if alias not in self.aliases:
            raise MlflowException(f"Registered model alias {alias} not found.",
                                  error_code=INVALID_PARAMETER_VALUE)  # fmt: skip
        return ModelVersion(name, self.aliases[alias], 0)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append((name, alias, version))
        self.aliases[alias] = version

    def get_registered_model(self, name: str) -> RegisteredModel:
        assert name == "m", name
        return RegisteredModel(name, tags=[RegisteredModelTag(k, v) for k, v in self.tags.items()])

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        assert name == "m", name
        self.tags[key] = value


@pytest.fixture
def gauges(monkeypatch) -> dict[str, float]:
    sent: dict[str, float] = {}
    monkeypatch.setattr(registry, "set_gauge", sent.__setitem__)
    return sent


def use(monkeypatch, fake: FakeRegistry) -> FakeRegistry:
    def get_client(settings=None) -> FakeRegistry:
        assert settings is SETTINGS  # the caller's settings travel all the way down
        return fake

    monkeypatch.setattr(registry, "get_client", get_client)
    return fake


def test_promoting_keeps_the_former_champion_as_previous(monkeypatch, gauges, caplog):
    fake = use(monkeypatch, FakeRegistry({"champion": "1", "previous": "0"}))
    with caplog.at_level("INFO", logger="prodcat.training.registry"):
        assert promote_version("2", SETTINGS) == "1"
    assert fake.calls == [("m", "previous", "1"), ("m", "champion", "2")]
    assert gauges == {"train.champion_version": 2}
    assert caplog.messages == ["version 2 is the champion (previous: 1)"]


def test_the_first_promotion_sets_no_previous(monkeypatch, gauges, caplog):
    fake = use(monkeypatch, FakeRegistry())
    with caplog.at_level("INFO", logger="prodcat.training.registry"):
        assert promote_version("1", SETTINGS) is None
    assert fake.aliases == {"champion": "1"}
    assert caplog.messages == ["version 1 is the champion (previous: None)"]


def test_promoting_the_champion_again_leaves_previous_alone(monkeypatch, gauges):
    fake = use(monkeypatch, FakeRegistry({"champion": "2", "previous": "1"}))
    assert promote_version("2", SETTINGS) == "2"
    assert fake.aliases == {"champion": "2", "previous": "1"}


def test_rollback_swaps_champion_and_previous(monkeypatch, gauges, caplog):
    fake = use(monkeypatch, FakeRegistry({"champion": "5", "previous": "3"}))
    with caplog.at_level("WARNING", logger="prodcat.training.registry"):
        assert rollback_champion(SETTINGS) == "3"
    assert caplog.messages == ["rolled back: champion is version 3 again (was 5)"]
    assert fake.aliases == {"champion": "3", "previous": "5"}
    assert rollback_champion(SETTINGS) == "5"
    assert fake.aliases == {"champion": "5", "previous": "3"}


@pytest.mark.parametrize("aliases", [{"champion": "1"}, {"previous": "1"}, {}])
def test_rollback_without_a_previous_champion_is_a_clear_failure(monkeypatch, gauges, aliases):
    fake = use(monkeypatch, FakeRegistry(aliases))
    with pytest.raises(ValueError, match=r"^there is no previous champion to roll back to$"):
        rollback_champion(SETTINGS, run_key="manual__1")
    assert fake.calls == [] and fake.tags == {} and gauges == {}


def test_a_retried_rollback_carries_out_its_plan_and_never_flips_back(monkeypatch, gauges, caplog):
    fake = use(monkeypatch, FakeRegistry({"champion": "5", "previous": "3"}))
    run_key = "manual__2026-11-01T00:00:00+00:00"
    assert rollback_champion(SETTINGS, run_key=run_key) == "3"
    # The plan is tagged under a key MLflow accepts ('+' is not allowed).
    assert fake.tags == {"rollback.manual__2026-11-01T00:00:00_00:00": "3->5"}
    caplog.clear()
    with caplog.at_level("INFO", logger="prodcat.training.registry"):
        assert rollback_champion(SETTINGS, run_key=run_key) == "3"
    assert fake.aliases == {"champion": "3", "previous": "5"}
    assert gauges == {"train.champion_version": 3}
    assert caplog.messages == [
        f"rollback {run_key} was planned before: 5 -> 3",
        "rolled back: champion is version 3 again (was 5)",
    ]


def test_a_rollback_interrupted_after_its_plan_completes_on_retry(monkeypatch, gauges):
    fake = use(monkeypatch, FakeRegistry({"champion": "5", "previous": "3"}))
    fake.tags["rollback.run-1"] = "3->5"  # planned, then the task died before moving aliases
    assert rollback_champion(SETTINGS, run_key="run-1") == "3"
    assert fake.calls == [("m", "champion", "3"), ("m", "previous", "5")]


def test_a_registry_outage_is_not_a_missing_alias(monkeypatch):
    use(monkeypatch, FakeRegistry(down=True))
    with pytest.raises(MlflowException, match="registry unavailable"):
        get_alias_version("champion", SETTINGS)


@pytest.mark.parametrize(
    ("code", "message", "missing"),
    [
        (RESOURCE_DOES_NOT_EXIST, "Registered Model with name=m not found", True),
        (INVALID_PARAMETER_VALUE, "Registered model alias champion not found.", True),
        (INVALID_PARAMETER_VALUE, "alias champion is invalid", False),
        (INVALID_PARAMETER_VALUE, "version 3 not found", False),
        (INTERNAL_ERROR, "alias champion not found", False),
    ],
)
def test_only_a_missing_model_or_alias_reads_as_missing(code, message, missing):
    assert is_missing(MlflowException(message, error_code=code)) is missing


def test_the_snapshot_batch_comes_from_the_version_tag():
    tagged = ModelVersion("m", "2", 0, tags=[ModelVersionTag(SNAPSHOT_BATCH_TAG, "17")])
    assert get_snapshot_batch(tagged) == 17
    assert get_snapshot_batch(ModelVersion("m", "1", 0)) == 0
    assert get_snapshot_batch(None) == 0

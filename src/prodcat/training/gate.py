"""The quality gate: a challenger is promoted only if it clears the floor, is calibrated, and
beats the champion on the same evaluation set. The rule is apart from the registry's calls."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prodcat.config import Settings, get_settings
from prodcat.data.training_set import load_evaluation_set
from prodcat.drift.store import count_shadow_agreement
from prodcat.training.evaluate import evaluate_model
from prodcat.training.registry import (
    CHALLENGER,
    get_alias_version,
    get_champion,
    get_client,
    load_version,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    challenger: str
    champion: str | None
    challenger_f1: float
    champion_f1: float | None
    promote: bool
    reason: str
    challenger_ece: float | None = None
    # Beside the evaluation set's scores: how often it agreed with the champion on live
    # inputs scored in shadow, and on how many (0 and None before it was a challenger); and
    # the same for the version shadowed now, when another one is.
    live_agreement: float | None = None
    live_rows: int = 0
    shadowed_version: str | None = None
    shadowed_agreement: float | None = None
    shadowed_rows: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def decide(
    challenger_f1: float,
    champion_f1: float | None,
    min_delta: float,
    floor: float,
    challenger_ece: float | None = None,
    max_ece: float = 1.0,
) -> tuple[bool, str]:
    """The gate's rule, on its own: beat the floor, be calibrated within max_ece, and beat the
    champion by at least min_delta."""
    if challenger_f1 < floor:
        return False, f"challenger F1 {challenger_f1:.4f} is below the floor {floor:.4f}"
    if challenger_ece is not None and not challenger_ece <= max_ece:  # NaN is refused too
        return False, (
            f"challenger ECE {challenger_ece:.4f} exceeds the maximum {max_ece:.4f}: "
            "its confidence cannot be trusted"
        )
    if champion_f1 is None:
        return True, f"no champion yet; challenger F1 {challenger_f1:.4f} clears the floor"
    if challenger_f1 >= champion_f1 + min_delta:
        return True, (
            f"challenger F1 {challenger_f1:.4f} beats champion {champion_f1:.4f} "
            f"by at least {min_delta:.4f}"
        )
    return False, (
        f"challenger F1 {challenger_f1:.4f} does not beat champion {champion_f1:.4f} "
        f"by {min_delta:.4f}"
    )


def gate_challenger(version: str, dataset: str, settings: Settings | None = None) -> GateDecision:
    """Score challenger and champion on the same evaluation set now; tag both with the decision."""
    settings = settings or get_settings()
    X, y = load_evaluation_set(settings, dataset)
    if X.empty:
        raise ValueError(f"dataset {dataset} has no evaluation set; run reset_data first")
    scores = evaluate_model(load_version(version, settings), X, y).metrics
    challenger_f1, challenger_ece = scores["f1_weighted"], scores.get("ece")
    champion = get_champion(settings)
    champion_f1 = None
    if champion is not None and champion.version != version:
        model = load_version(champion.version, settings)
        champion_f1 = evaluate_model(model, X, y).metrics["f1_weighted"]
    training = settings.training
    promote, reason = decide(challenger_f1, champion_f1, training.min_delta, training.f1_floor,
                             challenger_ece, training.max_ece)  # fmt: skip
    decision = GateDecision(version, champion.version if champion else None, challenger_f1,
                            champion_f1, promote, reason, challenger_ece,
                            **find_live_agreement(version, settings))  # fmt: skip
    _tag_decision(decision, settings)
    log.info("gate for version %s: %s (%s)", version, "promote" if promote else "refuse", reason)
    return decision


def find_live_agreement(version: str, settings: Settings) -> dict:
    """The live agreement with the champion of a version, and of the version the
    `challenger` alias shadows now when it is another: GateDecision's live fields."""
    rows, agreement = count_shadow_agreement(settings, version)
    found = {"live_agreement": agreement, "live_rows": rows}
    shadowed = get_alias_version(CHALLENGER, settings)
    if shadowed is not None and shadowed.version != version:
        rows, agreement = count_shadow_agreement(settings, shadowed.version)
        found |= {"shadowed_version": shadowed.version, "shadowed_agreement": agreement,
                  "shadowed_rows": rows}  # fmt: skip
    return found


def format_score(value: float | None) -> str:
    """A score as a tag value: six decimals, or empty when there is none."""
    return "" if value is None else f"{value:.6f}"


def _tag_decision(decision: GateDecision, settings: Settings) -> None:
    client, name = get_client(settings), settings.mlflow.model_name
    verdict = "promoted" if decision.promote else "refused"
    tags = {
        "gate.decision": verdict,
        "gate.reason": decision.reason,
        "gate.challenger_f1": format_score(decision.challenger_f1),
        "gate.champion_f1": format_score(decision.champion_f1),
        "gate.challenger_ece": format_score(decision.challenger_ece),
        "gate.live_agreement": format_score(decision.live_agreement),
        "gate.live_rows": str(decision.live_rows),
        "gate.shadowed_version": decision.shadowed_version or "",
        "gate.shadowed_agreement": format_score(decision.shadowed_agreement),
        "gate.shadowed_rows": str(decision.shadowed_rows),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.challenger, key, value)
    if decision.champion:
        client.set_model_version_tag(
            name,
            decision.champion,
            f"gate.vs_{decision.challenger}",
            f"{verdict}: {decision.reason}",
        )

"""One comparison of a current window with its reference, with Evidently's DataDriftPreset.

Every column's type is declared: a category code is categorical even when it looks like a
number. Evidently picks each column's test (Wasserstein or Jensen-Shannon distance on large
samples, K-S or chi-square on small ones); a column drifts when its distance reaches the
threshold, or its p-value falls below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prodcat.config import DriftSettings
from prodcat.drift.descriptors import DESCRIPTOR_COLUMNS

NUMERICAL = [*DESCRIPTOR_COLUMNS, "oov_share", "confidence"]
CATEGORICAL = ["label", "predicted_category"]


@dataclass
class Comparison:
    status: str  # drift | no_drift | insufficient_data
    reference_rows: int
    current_rows: int
    drift_share: float | None = None
    drifted_columns: int | None = None
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    html: str | None = None

    @property
    def detected(self) -> bool:
        return self.status == "drift"


def compare_frames(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], cfg: DriftSettings
) -> Comparison:
    """Compare the given columns; below cfg.min_rows on either side there is no decision."""
    if min(len(reference), len(current)) < cfg.min_rows:
        return Comparison("insufficient_data", len(reference), len(current))
    snapshot = run_report(reference[columns], current[columns], cfg.share_threshold)
    scores = read_column_scores(snapshot.dict())
    drifted = [name for name, score in scores.items() if score["drifted"]]
    share = len(drifted) / len(scores) if scores else 0.0
    key_drift = any(name in cfg.key_columns for name in drifted)
    status = "drift" if share >= cfg.share_threshold or key_drift else "no_drift"
    return Comparison(
        status, len(reference), len(current), share, len(drifted), scores,
        snapshot.get_html_str(as_iframe=False),
    )  # fmt: skip


def run_report(reference: pd.DataFrame, current: pd.DataFrame, share: float):
    """Evidently's DataDriftPreset over every column of the frames; returns the snapshot."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in NUMERICAL if c in current.columns],
        categorical_columns=[c for c in CATEGORICAL if c in current.columns],
    )
    report = Report([DataDriftPreset(columns=list(current.columns), drift_share=share)])
    return report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def read_column_scores(snapshot: dict) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's score, its method and threshold, and whether it drifted."""
    scores = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        score, method, threshold = float(metric["value"]), config["method"], config["threshold"]
        # p-value tests drift below the threshold; distances at or above it.
        drifted = score < threshold if "p_value" in method else score >= threshold
        scores[config["column"]] = {
            "score": score, "method": method, "threshold": threshold, "drifted": drifted,
        }  # fmt: skip
    return scores

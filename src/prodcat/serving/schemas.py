"""Request and response schemas of the API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Some character that is not whitespace, by Python's and by JSON Schema's (ECMAScript) rules
# alike, so the spec and the check agree on what "blank" is.
NON_BLANK = r"[^\s\u001c-\u001f\u0085\ufeff]"
# PostgreSQL refuses NUL in text: identifiers and names that reach it must not hold one.
WITHOUT_NUL = r"^[^\x00]+$"
# A name that is not blank and holds no NUL.
NAME_WITHOUT_NUL = r"^[^\x00]*[^\s\u001c-\u001f\u0085\ufeff\x00][^\x00]*$"


class ErrorResponse(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: str


class ReadinessResponse(BaseModel):
    ready: bool
    model_name: str
    model_version: str | None = None
    stale: bool = False
    detail: str | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Figurine Star Wars Dark Vador 30 cm",
                 "description": "Figurine <b>articulée</b> en vinyle, état neuf"}
            ]
        },
    )  # fmt: skip

    title: str = Field(
        description="Product title; HTML is allowed and cleaned by the model. At most "
        "PRODCAT_DATA__MAX_TITLE_CHARS characters after cleaning."
    )
    description: str | None = Field(
        default=None,
        description="Optional product description; at most PRODCAT_DATA__MAX_DESCRIPTION_CHARS "
        "characters after cleaning.",
    )

    @field_validator("title")
    @classmethod
    def _title_present(cls, value: str) -> str:
        # Lengths are checked after cleaning, with the request's budget (serving/budget.py).
        if not re.search(NON_BLANK, value):
            raise ValueError("title must not be blank")
        return value


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[PredictRequest] = Field(
        description="1 to PRODCAT_API__MAX_BATCH_ITEMS items, of at most "
        "PRODCAT_API__MAX_REQUEST_CHARS characters after cleaning together."
    )


class CategoryScore(BaseModel):
    category_code: str
    category_name: str | None
    confidence: float


class Contribution(BaseModel):
    view: str = Field(description="The TF-IDF view: word, char or cased")
    ngram: str
    contribution: float = Field(description="coefficient x TF-IDF value, signed")


class RunnerUp(BaseModel):
    category_code: str
    margin: float
    margin_gap: float = Field(description="predicted margin minus this one")
    intercept_gap: float
    features: list[Contribution] = Field(description="what separates the two, largest first")
    other_features: float


class Explanation(BaseModel):
    """intercept + the listed contributions + other_features = margin, exactly."""

    category_code: str
    margin: float
    intercept: float
    features: list[Contribution] = Field(description="the n-grams that pushed most, signed")
    other_features: float = Field(description="the sum of every contribution not listed")
    runner_up: RunnerUp


class PredictResponse(CategoryScore):
    top_k: list[CategoryScore]
    model_version: str
    explanation: Explanation | None = Field(None, description="with ?explain=true")


class BatchPredictResponse(BaseModel):
    predictions: list[PredictResponse]
    model_version: str


class ModelInfoResponse(BaseModel):
    model_name: str
    model_version: str
    source: str
    trained_at: Any = None
    metrics: dict[str, float] = {}
    classes: list[str]


class DriftColumn(BaseModel):
    score: float
    method: str
    threshold: float
    drifted: bool


class DriftWindow(BaseModel):
    window_name: str = Field(description="new_data or live_traffic")
    status: str = Field(description="drift, no_drift or insufficient_data")
    checked_at: datetime
    window_start: datetime | None
    window_end: datetime
    champion_version: str
    reference_rows: int
    current_rows: int
    drift_share: float | None
    drifted_columns: int | None
    columns: dict[str, DriftColumn]
    retrain_triggered: bool
    bucket: str
    report_key: str | None = Field(description="The HTML report's key in the bucket")


class DriftResponse(BaseModel):
    windows: list[DriftWindow]

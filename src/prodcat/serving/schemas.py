"""Request and response schemas of the API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Some character that is not whitespace, by Python's and by JSON Schema's (ECMAScript) rules
# alike, so the spec and the check agree on what "blank" is.
NON_BLANK = r"[^\s\u001c-\u001f\u0085\ufeff]"


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


class PredictResponse(CategoryScore):
    top_k: list[CategoryScore]
    model_version: str


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

"""The review queue and corrections, behind the bearer token PRODCAT_REVIEW__TOKEN."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from prodcat.data.dataset import load_dataset_spec
from prodcat.operations.review import (
    Correction,
    UnknownCategory,
    UnknownTarget,
    list_open_reviews,
    record_correction,
)
from prodcat.serving.deps import ReviewerDep, SettingsDep
from prodcat.serving.schemas import NAME_WITHOUT_NUL, WITHOUT_NUL, ErrorResponse

router = APIRouter(
    tags=["review"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"},
        503: {"model": ErrorResponse, "description": "The database is unreachable"},
    },
)
log = logging.getLogger(__name__)


class ReviewItem(BaseModel):
    id: int = Field(description="The prediction id POST /feedback takes")
    source: str = Field(description="batch (a listing) or api (a request's text)")
    dataset: str | None
    product_id: str | None
    title: str
    description: str
    category_code: str
    confidence: float
    model_version: str
    created_at: datetime


class ListingFeedback(BaseModel):
    """A listing's right category."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"product_id": "3804725264", "category_code": "2583", "reviewer": "alice"}]},
    )  # fmt: skip
    product_id: str = Field(min_length=1, max_length=200, pattern=WITHOUT_NUL)
    category_code: str = Field(min_length=1, max_length=100, pattern=WITHOUT_NUL)
    reviewer: str = Field(min_length=1, max_length=200, pattern=NAME_WITHOUT_NUL)


class PredictionFeedback(BaseModel):
    """The right category of a queued answer (an id from GET /review)."""

    model_config = ConfigDict(extra="forbid")
    prediction_id: int = Field(ge=1, le=2**53, description="An id from GET /review")
    category_code: str = Field(min_length=1, max_length=100, pattern=WITHOUT_NUL)
    reviewer: str = Field(min_length=1, max_length=200, pattern=NAME_WITHOUT_NUL)


class FeedbackResponse(BaseModel):
    feedback_id: int
    product_id: str | None
    review_id: int | None
    category_code: str
    sent_by: str
    sent_at: datetime


class ReviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is a 422, not ignored
    limit: int = Field(50, ge=1, le=1000, description="How many answers to list")


@router.get("/review", response_model=list[ReviewItem])
def get_review_queue(
    settings: SettingsDep, _reviewer: ReviewerDep, query: Annotated[ReviewQuery, Query()]
) -> list[ReviewItem]:
    """Answers under PRODCAT_REVIEW__CONFIDENCE_THRESHOLD nobody has corrected yet, lowest
    confidence first."""
    try:
        return [ReviewItem(**row) for row in list_open_reviews(settings, query.limit)]
    except SQLAlchemyError as error:
        raise unavailable(error) from error


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    status_code=201,
    responses={404: {"model": ErrorResponse,
                     "description": "Unknown listing, prediction or category (named)"}},
)  # fmt: skip
def post_feedback(
    body: ListingFeedback | PredictionFeedback, settings: SettingsDep, _reviewer: ReviewerDep
) -> FeedbackResponse:
    """Correct a listing's category (product_id) or a queued answer's (prediction_id). The
    next training uses it over the original label, and it counts toward the backlog."""
    about = body.model_dump()
    correction = Correction(body.category_code, body.reviewer, about.get("product_id"),
                            about.get("prediction_id"))  # fmt: skip
    try:
        stored = record_correction(settings, load_dataset_spec(settings).name, correction)
    except (UnknownTarget, UnknownCategory) as error:
        raise HTTPException(404, detail=str(error)) from error
    except SQLAlchemyError as error:
        raise unavailable(error) from error
    log.info("feedback %s: %s", stored["feedback_id"], stored)
    return FeedbackResponse(**stored)


def unavailable(error: Exception) -> HTTPException:
    log.warning("review queue unavailable: %s", error)
    return HTTPException(503, detail="the review queue is unavailable: database unreachable")

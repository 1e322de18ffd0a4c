"""The latest drift check of each window, as drift_detection stored it."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import SQLAlchemyError

from prodcat.serving.deps import SettingsDep
from prodcat.serving.schemas import DriftResponse, DriftWindow, ErrorResponse

router = APIRouter(tags=["monitoring"])
log = logging.getLogger(__name__)


@router.get(
    "/drift",
    response_model=DriftResponse,
    responses={503: {"model": ErrorResponse, "description": "The database is unreachable"}},
)
def get_drift(settings: SettingsDep) -> DriftResponse:
    """Per window (new_data, live_traffic): the decision, the scores and the report's S3 key."""
    from prodcat.drift.store import find_latest_reports

    try:
        reports = find_latest_reports(settings)
    except SQLAlchemyError as error:
        log.warning("could not read drift reports: %s", error)
        raise HTTPException(
            503, detail="drift reports are unavailable: database unreachable"
        ) from error
    windows = [
        DriftWindow(**report, checked_at=report["created_at"], bucket=settings.s3.reports_bucket)
        for report in reports
    ]
    return DriftResponse(windows=windows)

"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from prodcat.serving.schemas import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def get_health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse(status="ok")


@router.get(
    "/ready", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}}
)
def get_ready(request: Request) -> JSONResponse:
    """Readiness: 200 only when a model is loaded."""
    state = request.app.state.models
    body = ReadinessResponse(
        ready=state.current is not None,
        model_name=state.model_name,
        model_version=state.current.version if state.current else None,
        stale=bool(state.current and state.current.source != "registry"),
        detail=state.detail,
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)

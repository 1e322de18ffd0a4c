"""Operator actions, behind the bearer token PRODCAT_API__ADMIN_TOKEN."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from prodcat.serving.deps import AdminDep
from prodcat.serving.schemas import ErrorResponse

router = APIRouter(prefix="/admin", tags=["admin"])


class ReloadResponse(BaseModel):
    reloaded: bool
    model_version: str | None


@router.post(
    "/reload",
    response_model=ReloadResponse,
    responses={401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"}},
)
async def reload_model(request: Request, _admin: AdminDep) -> ReloadResponse:
    """Load the registry's champion now (off the request path of predictions)."""
    reloaded = await request.app.state.reloader.reload_if_changed(force=True)
    current = request.app.state.models.current
    return ReloadResponse(reloaded=reloaded, model_version=current.version if current else None)

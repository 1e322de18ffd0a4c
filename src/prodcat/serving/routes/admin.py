"""Operator actions, behind the bearer token PRODCAT_API__ADMIN_TOKEN."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from prodcat.config import get_settings
from prodcat.serving.schemas import ErrorResponse

router = APIRouter(prefix="/admin", tags=["admin"])
bearer = HTTPBearer(auto_error=False)


class ReloadResponse(BaseModel):
    reloaded: bool
    model_version: str | None


def require_admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    expected = get_settings().api.admin_token.get_secret_value()
    if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
        raise HTTPException(401, detail="a valid admin bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"}},
)
async def reload_model(request: Request) -> ReloadResponse:
    """Load the registry's champion now (off the request path of predictions)."""
    reloaded = await request.app.state.reloader.reload_if_changed(force=True)
    current = request.app.state.models.current
    return ReloadResponse(reloaded=reloaded, model_version=current.version if current else None)

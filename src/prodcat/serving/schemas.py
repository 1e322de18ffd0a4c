"""Request and response schemas of the API."""

from __future__ import annotations

from pydantic import BaseModel


class HealthResponse(BaseModel):
    status: str


class ReadinessResponse(BaseModel):
    ready: bool
    model_name: str
    model_version: str | None = None
    stale: bool = False
    detail: str | None = None

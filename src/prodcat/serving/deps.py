"""What routes take from the app: settings, the served model, the admin check, top_k.

Each is an Annotated alias, as in full-stack-fastapi-template's api/deps.py, so a route
declares `settings: SettingsDep` and reads nothing global. The functions are async on
purpose: FastAPI runs a plain `def` dependency in its thread pool, a hop per request that
the prediction hot path cannot afford.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from prodcat.config import Settings
from prodcat.serving.model_store import LoadedModel

bearer = HTTPBearer(auto_error=False)


async def get_settings_of_app(request: Request) -> Settings:
    """The settings create_app was given."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]


async def get_current_model(request: Request) -> LoadedModel:
    """The model being served; 503 with the reason while there is none."""
    loaded = request.app.state.models.current
    if loaded is None:
        raise HTTPException(503, detail=request.app.state.models.detail or "no model loaded")
    return loaded


ModelDep = Annotated[LoadedModel, Depends(get_current_model)]


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless the bearer token is PRODCAT_API__ADMIN_TOKEN.

    Compared as bytes: compare_digest refuses str holding anything but ASCII, and a header
    may hold any byte (Starlette decodes headers as Latin-1, so encoding back is exact).
    """
    check_token(credentials, [settings.api.admin_token.get_secret_value()], "admin")


AdminDep = Annotated[None, Depends(require_admin)]


async def require_reviewer(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 unless the bearer token is PRODCAT_REVIEW__TOKEN (or the admin token)."""
    tokens = [settings.review.token.get_secret_value(), settings.api.admin_token.get_secret_value()]
    check_token(credentials, tokens, "review")


ReviewerDep = Annotated[None, Depends(require_reviewer)]


def check_token(
    credentials: HTTPAuthorizationCredentials | None, tokens: list[str], kind: str
) -> None:
    """401 unless the bearer token is one of tokens."""
    given = credentials.credentials.encode("latin-1", "replace") if credentials else b""
    matches = [secrets.compare_digest(given, token.encode()) for token in tokens]
    if not given or not any(matches):
        raise HTTPException(401, detail=f"a valid {kind} bearer token is required",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


DEFAULT_TOP_K = 3


async def get_top_k(
    request: Request,
    top_k: int = Query(DEFAULT_TOP_K, ge=1, description="How many categories to return"),
) -> int:
    """top_k, at most PRODCAT_API__MAX_TOP_K."""
    # The app's settings, read directly: one dependency less on the prediction hot path.
    limit = request.app.state.settings.api.max_top_k
    if top_k > limit:  # the same 422 body as every other validation error
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": ("query", "top_k"), "input": top_k,
            "msg": f"top_k must be at most {limit} (got {top_k})", "ctx": {"le": limit},
        }])  # fmt: skip
    return top_k


TopK = Annotated[int, Depends(get_top_k)]


async def get_explain(
    explain: bool = Query(
        False,
        description="Add the n-grams behind each answer (linear "
        "models): at most 1 ms more per item",
    ),
) -> bool:
    return explain


Explain = Annotated[bool, Depends(get_explain)]

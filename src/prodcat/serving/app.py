"""The API's app factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from prodcat import __version__
from prodcat.config import Settings, get_settings
from prodcat.serving import metrics
from prodcat.serving.routes import health
from prodcat.serving.routes import metrics as metrics_routes
from prodcat.serving.state import ModelState


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; the model is loaded once, in the lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.models = ModelState(model_name=settings.mlflow.model_name)
        metrics.MODEL_LOADED.set(0)
        yield

    app = FastAPI(title="prodcat", version=__version__, lifespan=lifespan)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)

    @app.middleware("http")
    async def record_metrics(request: Request, call_next) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.LATENCY.labels(path).observe(time.perf_counter() - started)
        metrics.REQUESTS.labels(path, request.method, str(response.status_code)).inc()
        return response

    return app

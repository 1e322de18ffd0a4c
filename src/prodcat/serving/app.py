"""The API's app factory."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from prodcat import __version__
from prodcat.config import Settings, get_settings
from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel, ModelUnavailable, load_champion
from prodcat.serving.reloader import ModelReloader, probe_champion_version
from prodcat.serving.routes import admin, health, model, predict
from prodcat.serving.routes import metrics as metrics_routes
from prodcat.serving.state import ModelState

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    loader: Callable[[Settings], LoadedModel] = load_champion,
    probe: Callable[[Settings], str | None] = probe_champion_version,
    poll: bool = True,
) -> FastAPI:
    """Build the API; the model is loaded once, in the lifespan."""
    settings = settings or get_settings()
    # A down registry must not stall start-up: fail fast, then fall back to the local copy.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ModelState(model_name=settings.mlflow.model_name)
        try:
            state.current, state.detail = loader(settings), None
            metrics.MODEL_INFO.labels(state.current.version, state.current.source).set(1)
        except ModelUnavailable as error:
            state.detail = str(error)
        except Exception as error:  # the API still starts and says why it is not ready
            log.exception("could not load a model")
            state.detail = f"model loading failed: {error}"
        app.state.models = state
        app.state.reloader = ModelReloader(state, settings, loader, probe)
        metrics.MODEL_LOADED.set(1 if state.current else 0)
        poller = asyncio.create_task(app.state.reloader.run_forever()) if poll else None
        yield
        if poller:
            poller.cancel()

    app = FastAPI(
        title="prodcat",
        version=__version__,
        lifespan=lifespan,
        description="Product categorisation: POST a listing to /predict/, get its category.",
    )
    for router in (
        health.router,
        predict.router,
        model.router,
        admin.router,
        metrics_routes.router,
    ):
        app.include_router(router)

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

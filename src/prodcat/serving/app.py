"""The API's app factory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from prodcat import __version__
from prodcat.config import Settings, get_settings
from prodcat.serving import metrics
from prodcat.serving.budget import Limits
from prodcat.serving.middleware import AdmissionMiddleware, RequestMetricsMiddleware
from prodcat.serving.model_store import (
    LoadedModel,
    ModelUnavailable,
    freeze_heap,
    load_champion,
)
from prodcat.serving.openapi import document_limits
from prodcat.serving.prediction_log import PredictionLogWriter
from prodcat.serving.predictor import Overloaded, PredictionBatcher
from prodcat.serving.reloader import ModelReloader, probe_champion_version
from prodcat.serving.routes import admin, drift, health, model, predict, review
from prodcat.serving.routes import metrics as metrics_routes
from prodcat.serving.shadow import ShadowScorer, find_challenger, load_challenger
from prodcat.serving.state import ModelState

log = logging.getLogger(__name__)
ECHO_CHARS = 200  # of an input, in a validation error


def create_app(
    settings: Settings | None = None,
    loader: Callable[[Settings], LoadedModel] = load_champion,
    probe: Callable[[Settings], str | None] = probe_champion_version,
    poll: bool = True,
    shadow_probe: Callable[[Settings], str | None] = find_challenger,
    shadow_loader: Callable[[Settings, str], LoadedModel] = load_challenger,
) -> FastAPI:
    """Build the API; the model is loaded once, in the lifespan. The shadow challenger, if
    any, is followed when poll is on (or set on app.state.shadow)."""
    settings = settings or get_settings()
    # A down registry must not stall start-up: fail fast, then fall back to the local copy.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    app = FastAPI(
        title="prodcat",
        version=__version__,
        lifespan=lambda app: run_background_tasks(
            app, settings, loader, probe, poll, (shadow_probe, shadow_loader)
        ),
        description="Product categorisation: POST a listing to /predict/, get its category.",
    )
    app.state.settings = settings  # what every route reads, through serving/deps.py
    app.state.limits = Limits.from_settings(settings)  # the request budget, made once
    for router in (
        health.router,
        predict.router,
        model.router,
        admin.router,
        drift.router,
        review.router,
        metrics_routes.router,
    ):
        app.include_router(router)
    document_limits(app, settings)

    add_error_handlers(app)
    app.add_middleware(AdmissionMiddleware, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware)
    return app


def load_first_model(settings: Settings, loader: Callable[[Settings], LoadedModel]) -> ModelState:
    """The model state at start: the loaded model, or why there is none (the API still
    starts, and /ready says why it is not ready)."""
    state = ModelState(model_name=settings.mlflow.model_name)
    try:
        state.current = loader(settings)
        state.detail, state.refused = state.current.note, state.current.refused
        metrics.MODEL_INFO.labels(state.current.version, state.current.source).set(1)
    except ModelUnavailable as error:
        state.detail, state.refused = str(error), error.refused
    except Exception as error:
        log.exception("could not load a model")
        state.detail = f"model loading failed: {error}"
    metrics.MODEL_LOADED.set(1 if state.current else 0)
    return state


@asynccontextmanager
async def run_background_tasks(
    app: FastAPI,
    settings: Settings,
    loader: Callable[[Settings], LoadedModel],
    probe: Callable[[Settings], str | None],
    poll: bool,
    shadow_hooks: tuple = (find_challenger, load_challenger),
) -> AsyncIterator[None]:
    """The lifespan: the model, the prediction log, the shadow challenger, the batcher, the
    reloader and the memory gauge run while the app serves, and stop with it."""
    app.state.models = state = load_first_model(settings, loader)
    freeze_heap()
    app.state.reloader = ModelReloader(state, settings, loader, probe)
    writer = PredictionLogWriter(settings) if settings.api.log_predictions else None
    if writer:
        writer.start()
    app.state.shadow = shadow = ShadowScorer(settings, writer.submit if writer else None,
                                             *shadow_hooks)  # fmt: skip
    shadowing = settings.api.shadow_sample > 0
    if shadowing:
        shadow.start()
    app.state.prediction_sink = combine_sinks(writer.log if writer else None,
                                              shadow.offer if shadowing else None)  # fmt: skip
    app.state.batcher = PredictionBatcher(settings, app.state.prediction_sink)
    metrics.WORKERS.set(1)
    tasks = [asyncio.create_task(app.state.batcher.run_forever()),
             asyncio.create_task(note_memory_forever())]  # fmt: skip
    if poll:
        tasks.append(asyncio.create_task(app.state.reloader.run_forever()))
        if shadowing:
            tasks.append(asyncio.create_task(follow_challenger_forever(app)))
    yield
    for task in tasks:
        task.cancel()
    app.state.reloader.stop()
    await asyncio.to_thread(shadow.stop)
    if writer:
        await asyncio.to_thread(writer.stop)


def combine_sinks(*sinks: Callable | None) -> Callable | None:
    """One prediction sink that hands each model call's answers to every sink given."""
    active = [sink for sink in sinks if sink is not None]
    if len(active) <= 1:
        return active[0] if active else None

    def sink(model_version: str, items: list, results: list[dict]) -> None:
        for each in active:
            each(model_version, items, results)

    return sink


async def follow_challenger_forever(app: FastAPI) -> None:
    """Load the `challenger` alias's version for shadowing, now and at every reload poll."""
    while True:
        current = app.state.models.current
        await app.state.shadow.refresh(current.version if current else None)
        await asyncio.sleep(app.state.settings.api.reload_interval_seconds)


def add_error_handlers(app: FastAPI) -> None:
    """422s that echo little, 503s that say when to retry, a 422 for a body not in UTF-8."""

    @app.exception_handler(RequestValidationError)
    async def shorten_validation_errors(request: Request, error: RequestValidationError):
        detail = [{**e, "input": shorten(e["input"])} if "input" in e else e
                  for e in error.errors()]  # fmt: skip
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    @app.exception_handler(Overloaded)
    async def ask_to_retry(request: Request, error: Overloaded) -> Response:
        headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse({"detail": error.detail}, status_code=503, headers=headers)

    @app.exception_handler(HTTPException)
    async def explain_undecodable_body(request: Request, error: HTTPException) -> Response:
        # FastAPI answers a non-UTF-8 JSON body with a bare 400; say what is wrong, like a 422.
        cause = error.__cause__
        if error.status_code == 400 and isinstance(cause, UnicodeDecodeError):
            message = (f"body must be UTF-8 encoded JSON (byte 0x{cause.object[cause.start]:02x} "
                       f"at position {cause.start} is not UTF-8)")  # fmt: skip
            detail = [{"type": "utf8_invalid", "loc": ["body"], "msg": message, "input": None}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, error)


def shorten(value: Any) -> Any:
    """At most ECHO_CHARS characters of an input: a string's start, or the start of the JSON
    of anything longer (a 3 MB title was echoed whole)."""
    if isinstance(value, str):
        return value[:ECHO_CHARS]
    if value is None or isinstance(value, int | float):
        return value
    text = json.dumps(jsonable_encoder(value), ensure_ascii=False)
    return value if len(text) <= ECHO_CHARS else text[:ECHO_CHARS]


async def note_memory_forever(interval: float = 5.0) -> None:
    """Keep this worker's memory gauges current (/metrics reads every worker's last value)."""
    while True:
        metrics.note_worker_memory()
        await asyncio.sleep(interval)

"""Predictions: one item or a batch, with the top-k categories and their confidence."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from prodcat.serving.budget import Limits, check_batch_size, clean_items
from prodcat.serving.deps import (
    DEFAULT_TOP_K,
    Explain,
    ModelDep,
    TopK,
    get_current_model,
    get_explain,
    get_top_k,
)
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    PredictRequest,
    PredictResponse,
)
from prodcat.training.explain import NotExplainable

# Cleaning a request this long or longer runs off the event loop: it may take milliseconds.
INLINE_CLEANING_CHARS = 2000

router = APIRouter(
    prefix="/predict",
    tags=["predict"],
    responses={
        413: {"model": ErrorResponse, "description": "Body or text over the request's budget"},
        503: {"model": ErrorResponse, "description": "No model loaded, or too busy: retry"},
    },
)


class PlainPredictionRoute(APIRoute):
    """POST /predict/, whose plain requests skip FastAPI's per-request machinery.

    A request with a JSON body that validates and no query string is answered by the endpoint
    called directly: the same function, the same answer. FastAPI's parsing of the body and
    the query and its solving of the dependencies cost a sixth of a worker's time; without
    them, two workers served 21% more requests a second at concurrency 16 (median of 6
    interleaved rounds of benchmarks/api_ab.py: 3,048 against 2,534).

    Anything else (a query, a body that does not validate, another content type, overridden
    dependencies) takes FastAPI's path, which reads the body again from Starlette's cache
    and answers as it always has, errors included.
    """

    PARAMETERS = ("body", "request", "loaded", "top_k", "explain")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        calls = [d.call for d in self.dependant.dependencies]
        if (
            tuple(inspect.signature(self.endpoint).parameters) != self.PARAMETERS
            or calls != [get_current_model, get_top_k, get_explain]
            or self.dependencies
        ):
            raise TypeError(f"{self.endpoint.__name__}: the plain path passes {self.PARAMETERS}")
        body_type = self.body_field.field_info.annotation
        provider = self.dependency_overrides_provider

        async def handle_plain(request: Request) -> Response:
            overridden = getattr(provider, "dependency_overrides", None)
            if request.scope["query_string"] or overridden or not is_json(request):
                return await handle(request)
            try:
                body = body_type.model_validate_json(await read_body(request))
            except ValidationError:
                return await handle(request)
            loaded = await get_current_model(request)
            top_k = await get_top_k(request, DEFAULT_TOP_K)
            return await self.endpoint(body, request, loaded, top_k, False)

        return handle_plain


def is_json(request: Request) -> bool:
    """Whether the request says its body is plain JSON (parameters send it FastAPI's way)."""
    return request.headers.get("content-type") == "application/json"


async def read_body(request: Request) -> bytes:
    """The body, or the 400 FastAPI gives when reading it fails (413s pass through)."""
    try:
        return await request.body()
    except StarletteHTTPException:
        raise
    except Exception as error:
        raise HTTPException(400, detail="There was an error parsing the body") from error


async def predict(
    body: PredictRequest, request: Request, loaded: ModelDep, top_k: TopK, explain: Explain
) -> Response:
    """The category of one product listing; with explain=true, the n-grams behind it."""
    if explain:
        check_explainable(loaded)
    docs = await clean_request(loaded, [body], request.app.state.limits, ("body",))
    results = await request.app.state.batcher.predict(loaded, docs, [body], [top_k], explain)
    return JSONResponse(results[0])


router.add_api_route("/", predict, methods=["POST"], response_model=PredictResponse,
                     route_class_override=PlainPredictionRoute)  # fmt: skip


@router.post("/batch", response_model=BatchPredictResponse)
async def predict_batch(
    body: BatchPredictRequest,
    request: Request,
    loaded: ModelDep,
    top_k: TopK,
    explain: Explain,
) -> Response:
    """Categories of up to PRODCAT_API__MAX_BATCH_ITEMS listings, in the same order."""
    limits = request.app.state.limits
    check_batch_size(body.items, limits)
    batcher = request.app.state.batcher
    batcher.lane(len(body.items)).check_room()  # before the work of cleaning, when refused
    if explain:
        check_explainable(loaded)
    docs = await clean_request(loaded, body.items, limits, ("body", "items"))
    ks = [top_k] * len(body.items)
    predictions = await batcher.predict(loaded, docs, body.items, ks, explain)
    # Returned as built (dicts shaped as the response model): FastAPI would validate and
    # serialise them again.
    return JSONResponse({"predictions": predictions, "model_version": loaded.version})


async def clean_request(
    loaded: LoadedModel, items: list[PredictRequest], limits: Limits, loc: tuple
) -> list[str]:
    """clean_items, in the thread pool when the request is long enough to hold the loop."""
    raw = sum(len(i.title) + len(i.description or "") for i in items)
    if raw < INLINE_CLEANING_CHARS:
        return clean_items(loaded.cleaner, items, limits, loc)
    return await run_in_threadpool(clean_items, loaded.cleaner, items, limits, loc)


def check_explainable(loaded: LoadedModel) -> None:
    """422 for a model that cannot explain, before the request queues."""
    try:
        loaded.check_explainable()
    except NotExplainable as error:
        detail = f"model version {loaded.version} cannot explain its answers: {error}"
        raise HTTPException(422, detail=f"{detail}; ask without explain") from error

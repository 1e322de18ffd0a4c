"""Predictions: one item or a batch, with the top-k categories and their confidence."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from prodcat.serving.budget import Limits, check_batch_size, clean_items
from prodcat.serving.deps import Explain, ModelDep, TopK
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


@router.post("/", response_model=PredictResponse)
async def predict(
    body: PredictRequest, request: Request, loaded: ModelDep, top_k: TopK, explain: Explain
) -> Response:
    """The category of one product listing; with explain=true, the n-grams behind it."""
    if explain:
        check_explainable(loaded)
    docs = await clean_request(loaded, [body], request.app.state.limits, ("body",))
    results = await request.app.state.batcher.predict(loaded, docs, [body], [top_k], explain)
    return JSONResponse(results[0])


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

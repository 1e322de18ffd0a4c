"""Predictions: one item or a batch, with the top-k categories and their confidence."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from prodcat.config import get_settings
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.predictor import predict_items
from prodcat.serving.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    ErrorResponse,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(
    prefix="/predict",
    tags=["predict"],
    responses={503: {"model": ErrorResponse, "description": "No model is loaded yet"}},
)


def current_model(request: Request) -> LoadedModel:
    loaded = request.app.state.models.current
    if loaded is None:
        raise HTTPException(503, detail=request.app.state.models.detail or "no model loaded")
    return loaded


async def top_k_param(
    top_k: int = Query(3, ge=1, description="How many categories to return"),
) -> int:
    limit = get_settings().api.max_top_k
    if top_k > limit:  # the same 422 body as every other validation error
        raise RequestValidationError([{
            "type": "less_than_equal", "loc": ("query", "top_k"), "input": top_k,
            "msg": f"top_k must be at most {limit} (got {top_k})", "ctx": {"le": limit},
        }])  # fmt: skip
    return top_k


TopK = Annotated[int, Depends(top_k_param)]


@router.post("/", response_model=PredictResponse)
async def predict(body: PredictRequest, request: Request, top_k: TopK) -> Response:
    """The category of one product listing."""
    result = await request.app.state.batcher.predict(current_model(request), body, top_k)
    return JSONResponse(result)


@router.post("/batch", response_model=BatchPredictResponse)
def predict_batch(body: BatchPredictRequest, request: Request, top_k: TopK) -> Response:
    """Categories of up to PRODCAT_API__MAX_BATCH_ITEMS listings, in the same order."""
    loaded = current_model(request)
    sink = request.app.state.prediction_sink
    predictions = predict_items(loaded, body.items, [top_k] * len(body.items), sink)
    # Returned as built (dicts shaped as the response model): FastAPI would validate and
    # serialise them again.
    return JSONResponse({"predictions": predictions, "model_version": loaded.version})

"""Predictions: one item or a batch, with the top-k categories and their confidence."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from prodcat.config import get_settings
from prodcat.serving import metrics
from prodcat.serving.model_store import LoadedModel
from prodcat.serving.schemas import (
    BatchPredictRequest,
    BatchPredictResponse,
    CategoryScore,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(prefix="/predict", tags=["predict"])


def current_model(request: Request) -> LoadedModel:
    loaded = request.app.state.models.current
    if loaded is None:
        raise HTTPException(503, detail=request.app.state.models.detail or "no model loaded")
    return loaded


def predict_items(
    loaded: LoadedModel, items: list[PredictRequest], k: int
) -> list[PredictResponse]:
    """Top-k categories for each item, in the items' order."""
    frame = pd.DataFrame(
        {"title": [i.title for i in items], "description": [i.description or "" for i in items]}
    )
    probabilities = loaded.model.predict_proba(frame)
    classes, names = loaded.classes, loaded.category_names
    best = np.argsort(-probabilities, axis=1)[:, :k]
    results = []
    for row, order in zip(probabilities, best, strict=True):
        top = [
            CategoryScore(category_code=classes[j], category_name=names.get(classes[j]),
                          confidence=round(float(row[j]), 6))
            for j in order
        ]  # fmt: skip
        results.append(
            PredictResponse(**top[0].model_dump(), top_k=top, model_version=loaded.version)
        )
        metrics.PREDICTIONS.labels(top[0].category_code).inc()
        metrics.CONFIDENCE.observe(top[0].confidence)
    return results


def top_k_param(
    top_k: int = Query(3, ge=1, description="How many categories to return"),
) -> int:
    limit = get_settings().api.max_top_k
    if top_k > limit:
        raise HTTPException(422, detail=f"top_k must be at most {limit} (got {top_k})")
    return top_k


TopK = Annotated[int, Depends(top_k_param)]


@router.post("/", response_model=PredictResponse)
def predict(body: PredictRequest, request: Request, top_k: TopK) -> PredictResponse:
    """The category of one product listing."""
    return predict_items(current_model(request), [body], top_k)[0]


@router.post("/batch", response_model=BatchPredictResponse)
def predict_batch(body: BatchPredictRequest, request: Request, top_k: TopK) -> BatchPredictResponse:
    """Categories of up to PRODCAT_API__MAX_BATCH_ITEMS listings, in the same order."""
    loaded = current_model(request)
    predictions = predict_items(loaded, body.items, top_k)
    return BatchPredictResponse(predictions=predictions, model_version=loaded.version)

"""What is being served."""

from __future__ import annotations

from fastapi import APIRouter, Request

from prodcat.serving.deps import ModelDep
from prodcat.serving.schemas import ErrorResponse, ModelInfoResponse

router = APIRouter(tags=["model"])


@router.get(
    "/model",
    response_model=ModelInfoResponse,
    responses={503: {"model": ErrorResponse, "description": "No model is loaded yet"}},
)
async def get_model(request: Request, loaded: ModelDep) -> ModelInfoResponse:
    """Version, source, training date, evaluation metrics and classes of the served model."""
    metrics = loaded.metadata.get("metrics", {})
    return ModelInfoResponse(
        model_name=request.app.state.models.model_name,
        model_version=loaded.version,
        source=loaded.source,
        trained_at=loaded.metadata.get("created"),
        metrics={k: v for k, v in metrics.items() if k.startswith(("eval_", "cv_"))},
        classes=loaded.classes,
    )

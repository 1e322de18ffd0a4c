"""Prometheus scrape endpoint."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from prodcat.serving.metrics import note_worker_memory

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                     "description": "Every worker's metrics, in the Prometheus text format"}},
)  # fmt: skip
def get_metrics() -> Response:
    """All metrics, summed over the workers when there are several; among them the worker
    count (prodcat_api_workers) and each worker's memory."""
    note_worker_memory()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

"""What the API holds in memory: the loaded model, if any."""

from __future__ import annotations

from dataclasses import dataclass

from prodcat.serving.model_store import LoadedModel


@dataclass
class ModelState:
    model_name: str
    current: LoadedModel | None = None
    detail: str | None = "no champion model has been loaded yet"
    refused: str | None = None  # the champion version the last load refused, if any

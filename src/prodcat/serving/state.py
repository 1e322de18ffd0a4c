"""What the API holds in memory: the loaded model, if any."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    model: Any
    version: str


@dataclass
class ModelState:
    model_name: str
    current: LoadedModel | None = None
    detail: str | None = "no champion model has been loaded yet"

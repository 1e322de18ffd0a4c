"""Loading the champion for serving, with a local copy for when the registry is unreachable."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from prodcat.config import Settings
from prodcat.training.explain import (
    LinearWeights,
    explain_row,
    find_feature_names,
    find_linear_weights,
)
from prodcat.training.features import ProductTextCleaner

log = logging.getLogger(__name__)
STALE_DOWNLOAD_SECONDS = 3600  # no download of a model takes this long
# A large batch goes through the model this many rows at a time. With the winner model, a
# 1,000-item batch at once held 40 MiB of n-gram hashes and feature matrices, 500 rows 27 MiB
# and 250 rows 18 MiB; fewer rows cost time: 82 ms at once, 90 ms by 500, 99 ms by 250.
PREDICT_ROWS = 500


class ModelUnavailable(RuntimeError):
    """Neither the registry nor the local copy has a model to serve."""

    def __init__(self, message: str, refused: str | None = None):
        super().__init__(message)
        self.refused = refused  # the champion version refused on the way, if any


class ChampionRefused(RuntimeError):
    """The champion's files were fetched but are not a model we may serve: their digest
    differs from the registered one, or the API cannot use the model. A property of the
    version, not an outage: trying it again gives the same answer."""

    def __init__(self, version: str, reason: Exception):
        super().__init__(str(reason))
        self.version = version


@dataclass
class LoadedModel:
    model: Any
    version: str
    source: str  # "registry" or "local-copy"
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # why this is not the registry's champion, for /ready
    refused: str | None = None  # the champion version this load refused, if any

    def __post_init__(self) -> None:
        _ = self.cleaner  # refuse a model the API cannot clean for at load, not per request

    # Computed once per model: predictions read them on every call.
    @cached_property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    @cached_property
    def category_names(self) -> dict[str, str]:
        return getattr(self.model, "category_names_", None) or {}

    @cached_property
    def cleaner(self) -> ProductTextCleaner:
        """The model's own first step: the API cleans each request once, with it, and measures
        the request's cost on the documents it produces."""
        first = self.model.steps[0][1] if isinstance(self.model, Pipeline) else None
        if not isinstance(first, ProductTextCleaner):
            raise TypeError(f"a served model starts with a ProductTextCleaner, not {first!r}")
        return first

    @cached_property
    def after_cleaning(self) -> Pipeline:
        """The model less its cleaning step: it takes the cleaner's documents."""
        return self.model[1:]

    @cached_property
    def feature_steps(self) -> list[Any]:
        """The fitted transforms between the cleaner and the classifier, called directly:
        Pipeline.predict_proba's checks cost a tenth of a single prediction."""
        return [step for _, step in self.model.steps[1:-1] if step not in (None, "passthrough")]

    @cached_property
    def classifier(self) -> Any:
        """The model's last step, which turns features into class probabilities."""
        return self.model.steps[-1][1]

    @cached_property
    def feature_names(self) -> list[tuple[str, Sequence[str]]]:
        """Each TF-IDF view's n-grams, built on the first explanation asked for."""
        return find_feature_names(self.after_cleaning)

    @cached_property
    def linear_weights(self) -> LinearWeights:
        """The coefficients explanations read; NotExplainable for a non-linear model."""
        return find_linear_weights(self.classifier)

    def check_explainable(self) -> None:
        """NotExplainable unless the model can explain (checked before a request queues)."""
        _ = self.linear_weights, self.feature_names

    def predict_and_explain(
        self, documents: list[str], explain: list[bool], top: int
    ) -> tuple[np.ndarray, list[dict | None]]:
        """Class probabilities, and for the documents marked, exact per-n-gram explanations
        (prodcat.training.explain), from one pass over the features."""
        probabilities, explanations = [np.zeros((0, len(self.classes)))], []
        for start in range(0, len(documents), PREDICT_ROWS):
            rows = slice(start, start + PREDICT_ROWS)
            features = self.featurize(documents[rows])
            proba = self.classifier.predict_proba(features)
            if any(explain[rows]):
                features = sp.csr_matrix(features)
                explanations += [
                    explain_row(self.linear_weights, features[i], proba[i], self.feature_names,
                                top) if wanted else None
                    for i, wanted in enumerate(explain[rows])
                ]  # fmt: skip
            else:
                explanations += [None] * proba.shape[0]
            probabilities.append(proba)
        return np.vstack(probabilities), explanations

    def predict_documents(self, documents: list[str]) -> np.ndarray:
        """Class probabilities of documents the cleaner made."""
        return self.predict_and_explain(documents, [False] * len(documents), 0)[0]

    def featurize(self, documents: list[str]) -> Any:
        """The classifier's input for documents the cleaner made."""
        features = documents
        for step in self.feature_steps:
            features = step.transform(features)
        return features

    @cached_property
    def categories(self) -> list[dict[str, str | None]]:
        """Code and name of each class, in the model's column order."""
        return [{"category_code": c, "category_name": self.category_names.get(c)}
                for c in self.classes]  # fmt: skip


def local_copy_dir(settings: Settings) -> Path:
    state = settings.state_dir
    return (state if state.is_absolute() else Path.cwd() / state) / "serving" / "models"


def freeze_heap() -> None:
    """Collect once, then hide everything alive (the model above all) from the collector.

    A full collection walked the model's vocabularies, hundreds of thousands of entries, and
    held the interpreter for about 200 ms: that was the slowest request of every benchmark.
    Frozen objects are never walked. Called after each load; what was frozen before is
    unfrozen first, so a model swapped out is collected like any other garbage.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def load_champion(settings: Settings) -> LoadedModel:
    """The registry's champion (kept on disk too); the last local copy when the registry fails."""
    try:
        return _load_from_registry(settings)
    except ModelUnavailable:
        raise
    except Exception as error:  # registry down, or its champion refused: serve what we had
        log.warning("cannot load the registry's champion (%s); trying the local copy", error)
        return _load_local_copy(settings, because=error)


def _load_from_registry(settings: Settings) -> LoadedModel:
    import mlflow.sklearn

    from prodcat.integrity import ModelIntegrityError, verify_model_dir
    from prodcat.training.registry import CHAMPION, get_champion, get_client

    version = get_champion(settings)
    if version is None:
        raise ModelUnavailable(
            f"no version of {settings.mlflow.model_name} has the '{CHAMPION}' alias yet"
        )
    target = fetch_copy(settings, version)
    try:
        verify_model_dir(target, version)
        model = mlflow.sklearn.load_model(str(target))
        loaded = LoadedModel(model, version.version, "registry")
    except (ModelIntegrityError, TypeError) as error:
        shutil.rmtree(target, ignore_errors=True)  # fetched afresh once the store is repaired
        raise ChampionRefused(version.version, error) from error
    metadata = {"tags": dict(version.tags), "run_id": version.run_id,
                "created": version.creation_timestamp}  # fmt: skip
    metadata["metrics"] = dict(get_client(settings).get_run(version.run_id).data.metrics)
    loaded.metadata = metadata
    # Loaded and accepted before the pointer moves: the local copy is always one that served.
    _write_pointer(target, version.version, metadata)
    prune_copies(target.parent, settings.api.model_copies, target)
    log.info("loaded %s version %s from the registry", settings.mlflow.model_name, version.version)
    return loaded


def fetch_copy(settings: Settings, version: Any) -> Path:
    """The version's folder in the local store, downloaded when missing. A failed download
    leaves nothing behind; a half-downloaded copy is never taken for a model."""
    import mlflow

    from prodcat.training.registry import use_mlflow

    # The run id is part of the name: version numbers restart when a registered model is recreated.
    target = local_copy_dir(settings) / f"{version.version}-{version.run_id}"
    if not (target / "MLmodel").exists():
        use_mlflow(settings)
        # Its own name: the API's workers start together and each may download the model.
        staging = target.with_name(f".{version.version}.{uuid.uuid4().hex}.partial")
        try:
            mlflow.artifacts.download_artifacts(
                f"models:/{settings.mlflow.model_name}/{version.version}", dst_path=str(staging)
            )
            _settle_copy(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    os.utime(target)  # the newest used copies are the ones kept
    return target


def _write_pointer(target: Path, version: str, metadata: dict) -> None:
    pointer = target.parent / "current.json"
    partial = pointer.with_name(f".current.{uuid.uuid4().hex}.json")
    partial.write_text(json.dumps({"version": version, "path": target.name, "metadata": metadata}))
    partial.replace(pointer)  # readers see the old pointer or the new one, never half of one


def prune_copies(folder: Path, keep: int, current: Path) -> list[Path]:
    """Delete all but the `keep` most recently used copies (never current), and downloads
    left half-done by a killed worker an hour ago. Returns what it deleted."""
    copies = [p for p in folder.iterdir() if p != current and (p / "MLmodel").exists()]
    copies.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [p for p in folder.glob(".*.partial")
             if time.time() - p.stat().st_mtime > STALE_DOWNLOAD_SECONDS]  # fmt: skip
    doomed = copies[keep - 1 :] + stale
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def _settle_copy(staging: Path, target: Path) -> None:
    """Move a finished download into place. When another worker got there first, its copy
    stays (ours is deleted by the caller)."""
    if target.exists() and not (target / "MLmodel").exists():
        shutil.rmtree(target, ignore_errors=True)  # debris of an older layout
    try:
        staging.rename(target)
    except OSError:
        if not (target / "MLmodel").exists():
            raise


def _load_local_copy(settings: Settings, because: Exception) -> LoadedModel:
    import mlflow.sklearn

    pointer = local_copy_dir(settings) / "current.json"
    refused = because.version if isinstance(because, ChampionRefused) else None
    if not pointer.exists():
        raise ModelUnavailable(
            f"{because}; and there is no local copy to fall back on", refused=refused
        )
    current = json.loads(pointer.read_text())
    model = mlflow.sklearn.load_model(str(local_copy_dir(settings) / current["path"]))
    log.warning("serving the local copy of version %s", current["version"])
    note = f"serving the local copy of version {current['version']}: {because}"
    metadata = current.get("metadata", {})
    return LoadedModel(model, current["version"], "local-copy", metadata, note, refused)

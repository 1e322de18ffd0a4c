"""A small real model for the API tests (three categories, trained in a second), its
registration in the real MLflow, and a real uvicorn server to serve it."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
from sklearn.pipeline import Pipeline

from prodcat.inference import compact_pipeline
from prodcat.train import build_pipeline, make_estimator

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY = {
    "10": "livre roman auteur poche edition",
    "40": "jeu console manette playstation nintendo",
    "2583": "piscine pompe filtration bache ronde",
}


def train_small_model() -> Pipeline:
    """The production pipeline (clean, TF-IDF, calibrated LinearSVC, compacted) on toy titles."""
    rows, labels = [], []
    for code, words in VOCABULARY.items():
        tokens = words.split()
        for i in range(30):
            rows.append({"title": f"{tokens[i % 5]} {tokens[(i + 1) % 5]} {i}", "description": ""})
            labels.append(code)
    pipeline = build_pipeline(make_estimator("linear_svc"), {"title_weight": 2},
                              {"char_ngrams": (2, 4), "char_min_df": 1})  # fmt: skip
    pipeline = compact_pipeline(pipeline.fit(pd.DataFrame(rows), pd.Series(labels)))
    pipeline.category_names_ = {"10": "Livres", "40": "Jeux vidéo"}
    return pipeline


def register_small_models(settings, name: str, count: int) -> list[str]:
    """Register count versions of the small model under name (recreated); the first is champion."""
    import mlflow
    import mlflow.sklearn

    from prodcat.registry import CHAMPION, get_client

    client = get_client(settings)
    if name in {m.name for m in client.search_registered_models()}:
        client.delete_registered_model(name)
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    versions = []
    for _ in range(count):
        with mlflow.start_run(run_name=f"{name}-fixture"):
            info = mlflow.sklearn.log_model(
                train_small_model(), name="model", registered_model_name=name,
                serialization_format="cloudpickle",
            )  # fmt: skip
        versions.append(str(info.registered_model_version))
    client.set_registered_model_alias(name, CHAMPION, versions[0])
    return versions


def wait_until(condition, timeout: float = 30.0, what: str = "condition"):
    """condition()'s first truthy value, polled every 0.2 s; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def api_server(bin_dir: Path, port: int, env: dict[str, str], log_file: Path, workers: int = 1):
    """`prodcat serve` from bin_dir, on 127.0.0.1:port, until /ready answers 200."""
    env = {**env, "PRODCAT_API__HOST": "127.0.0.1", "PRODCAT_API__PORT": str(port),
           "PRODCAT_API__WORKERS": str(workers)}  # fmt: skip
    with open(log_file, "w") as log:
        process = subprocess.Popen([str(bin_dir / "prodcat"), "serve"], cwd=ROOT, env=env,
                                   stdout=log, stderr=log)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # generous: a loaded 2-core machine is slow to load
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"the API did not get ready:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)

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

from prodcat.config import Settings
from prodcat.training.compact import compact_pipeline
from prodcat.training.features import ProductTextCleaner
from prodcat.training.search import build_pipeline, load_profile, make_estimator

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY = {
    "10": "livre roman auteur poche edition",
    "40": "jeu console manette playstation nintendo",
    "2583": "piscine pompe filtration bache ronde",
}


def train_small_model(candidate: str = "linear_svc") -> Pipeline:
    """The production pipeline (clean, TF-IDF, calibrated LinearSVC, compacted) on toy titles;
    candidate="xgboost" gives trees on an SVD of the same features instead."""
    rows, labels = [], []
    for code, words in VOCABULARY.items():
        tokens = words.split()
        for i in range(30):
            rows.append({"title": f"{tokens[i % 5]} {tokens[(i + 1) % 5]} {i}", "description": ""})
            labels.append(code)
    pipeline = build_pipeline(make_estimator(candidate), {"title_weight": 2},
                              {"char_ngrams": (2, 4), "char_min_df": 1},
                              reduce=10 if candidate == "xgboost" else None)  # fmt: skip
    pipeline = compact_pipeline(pipeline.fit(pd.DataFrame(rows), pd.Series(labels)))
    pipeline.category_names_ = {"10": "Livres", "40": "Jeux vidéo"}
    return pipeline


def train_winner_on_real_titles(rows: int = 4000) -> Pipeline:
    """The `winner` profile's pipeline (its TF-IDF, hence its cost per character) fitted on
    rows real titles: what memory and flood tests need, in well under a minute."""
    profile = load_profile("winner")
    data = pd.read_csv(ROOT / Settings().data.raw_dir / "designations.csv").dropna()
    data = data.sample(rows, random_state=7)
    titles = pd.DataFrame({"title": data["designation"], "description": ""})
    candidate = profile["candidates"][0]
    pipeline = build_pipeline(make_estimator(candidate["name"]), profile.get("text"),
                              profile.get("tfidf"))  # fmt: skip
    return compact_pipeline(pipeline.fit(titles, data["prdtypecode"].astype(str)))


def real_text(chars: int = 400_000) -> str:
    """Real titles, cleaned, without characters that cleaning would change again."""
    data = pd.read_csv(ROOT / Settings().data.raw_dir / "designations.csv").dropna()
    text = " ".join(data["designation"].sample(frac=1.0, random_state=11))
    text = "".join(c for c in text if c not in "&<>;")
    return ProductTextCleaner().clean_fields(text, "")[0][:chars]


def worst_case_items(request_chars: int, title_chars: int = 1000) -> list[dict]:
    """Items of real text whose documents (as the model's cleaner makes them, title twice)
    add up to exactly request_chars: the largest request the budget accepts. Adding one
    character to the last description makes it one character over."""
    text, per_item = real_text(), 2 * title_chars + 3  # "title . title"
    full, rest = divmod(request_chars, per_item)
    if rest:
        full, rest = full - 1, rest + per_item  # the last item: "a . a . description"
    items = [{"title": chunk(text, i * title_chars, title_chars)} for i in range(full)]
    if rest:
        items.append({"title": "a", "description": chunk(text, 7, rest - 8)})
    cleaner = ProductTextCleaner(title_weight=2)
    measured = sum(len(cleaner.compose(*cleaner.clean_fields(i["title"], i.get("description")
                                                            or ""))) for i in items)  # fmt: skip
    assert measured == request_chars, (measured, request_chars)
    return items


def chunk(text: str, start: int, length: int) -> str:
    """length characters of text from start (wrapping), with no space at either end."""
    piece = (text[start % len(text) :] + text)[:length]
    return "x" + piece[1:-1] + "x" if length > 1 else "x"


def register_small_models(settings, name: str, count: int, train=train_small_model) -> list[str]:
    """Register count versions of train()'s model under name (recreated); the first is champion."""
    import mlflow
    import mlflow.sklearn

    from prodcat.training.registry import CHAMPION, get_client, use_mlflow

    client = get_client(settings)
    if name in {m.name for m in client.search_registered_models()}:
        client.delete_registered_model(name)
    use_mlflow(settings)
    mlflow.set_experiment(settings.mlflow.experiment)
    versions = []
    for _ in range(count):
        with mlflow.start_run(run_name=f"{name}-fixture"):
            info = mlflow.sklearn.log_model(
                train(), name="model", registered_model_name=name,
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


def write_unlabelled_dataset(raw_dir: Path, folder: Path, rows: int, every: int) -> Path:
    """A dataset of the development file's first rows where every `every`-th row has no
    label (kept as a listing awaiting a category); the path of its description."""
    import uuid

    import yaml

    source = pd.read_csv(raw_dir / "designations.csv", dtype=str, keep_default_na=False)
    source = source.head(rows).copy()
    source.loc[source.index % every == 0, "prdtypecode"] = ""
    source.to_csv(folder / "designations.csv", index=False)
    (folder / "categories.csv").write_text((raw_dir / "categories.csv").read_text())
    spec = {"name": f"ops-{uuid.uuid4().hex[:8]}", "features_file": "designations.csv",
            "unlabelled_rows": "keep", "columns": {"title": "designation", "label": "prdtypecode"},
            "label_names": {"file": "categories.csv", "code_column": "prdtypecode",
                            "name_column": "name"}}  # fmt: skip
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return folder / "dataset.yaml"

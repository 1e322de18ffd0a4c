"""Train with a search profile on the shared designations file and compare with the reference.

Seeded stratified 80/20 split (random_state=42). Prints weighted and macro F1 and the expected
calibration error (15 bins) on the 20%, the wall time of the whole search, peak memory, and
inference time per 1,000 rows, for our model and for the reference configuration of the
most-cited open platform for this dataset: lowercase, punctuation stripped, French stopwords
removed, TfidfVectorizer(max_features=5000) unigrams, SVC(kernel="linear", C=1).

Usage: python benchmarks/train.py [--profile full|fast] [--skip-reference]
No service is needed: the data is read straight from PRODCAT_DATA__RAW_DIR.
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import time

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from prodcat.config import Settings
from prodcat.data.dataset import iter_source, load_dataset_spec
from prodcat.logging_setup import configure_logging
from prodcat.training.evaluate import measure_calibration
from prodcat.training.search import fit_best, search_candidates


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_model() -> Pipeline:
    from stop_words import get_stop_words

    french = set(get_stop_words("fr"))

    def clean(texts):
        return [
            " ".join(w for w in re.sub(r"[^\w\s]", " ", t.lower()).split() if w not in french)
            for t in texts
        ]

    return Pipeline(
        [
            ("clean", FunctionTransformer(clean)),
            ("tfidf", TfidfVectorizer(max_features=5000)),
            ("svc", SVC(kernel="linear", C=1)),
        ]
    )


def measure(name: str, model, X_test, y_test, fit_seconds: float) -> dict:
    started = time.perf_counter()
    predicted = model.predict(X_test)
    per_1000 = (time.perf_counter() - started) / len(X_test) * 1000
    sample = X_test.iloc[:1000] if hasattr(X_test, "iloc") else X_test[:1000]
    started = time.perf_counter()
    (model.predict_proba if hasattr(model, "predict_proba") else model.predict)(sample)
    proba_ms = (time.perf_counter() - started) * 1000
    ece = float("nan")  # the reference SVC gives no probabilities
    if hasattr(model, "predict_proba"):
        ece = measure_calibration(model.predict_proba(X_test), model.classes_, y_test).ece
    return {
        "model": name,
        "f1_weighted": f1_score(y_test, predicted, average="weighted"),
        "f1_macro": f1_score(y_test, predicted, average="macro"),
        "fit_s": fit_seconds,
        "predict_ms_per_1000": per_1000 * 1000,
        "proba_ms_1000_rows": proba_ms,
        "ece": ece,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    configure_logging("INFO")
    logging.getLogger("prodcat").setLevel(logging.INFO)

    settings = Settings(data={"dataset": "rakuten-designations"})
    spec = load_dataset_spec(settings)
    rows = pd.concat(list(iter_source(spec, settings.data.raw_dir)), ignore_index=True)
    X, y = rows[["title", "description"]], rows["label"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    started = time.perf_counter()
    search = search_candidates(X_train, y_train, args.profile)
    model = fit_best(X_train, y_train, search, args.profile)
    wall = time.perf_counter() - started
    ours = measure(f"prodcat ({search.best_name})", model, X_test, y_test, wall)
    ours_peak = peak_rss_mib()
    results = [ours]
    if not args.skip_reference:
        started = time.perf_counter()
        reference = reference_model().fit(X_train["title"], y_train)
        results.append(
            measure("reference (tfidf 5000 + SVC linear)", reference, X_test["title"], y_test,
                    time.perf_counter() - started)
        )  # fmt: skip

    print(f"\nrows: {len(X_train)} train / {len(X_test)} test, profile {args.profile}")
    print(f"search over {len(search.candidates)} settings, best {search.best_name} "
          f"CV F1 {search.best_score:.4f} {search.best_params}")  # fmt: skip
    for c in sorted(search.candidates, key=lambda c: -c["cv_f1"]):
        print(f"  cv {c['cv_f1']:.4f} ±{c['cv_std']:.4f}  {c['candidate']:<20} {c['params']}")
    print(f"{'model':<40} {'F1 w':>7} {'F1 m':>7} {'ECE':>7} {'fit+search s':>13} "
          f"{'predict ms/1k':>14}")  # fmt: skip
    for r in results:
        print(f"{r['model']:<40} {r['f1_weighted']:7.4f} {r['f1_macro']:7.4f} {r['ece']:7.4f} "
              f"{r['fit_s']:13.1f} {r['predict_ms_per_1000']:14.1f}")  # fmt: skip
    print(
        f"whole search + refit wall time: {wall:.1f} s; peak memory after it: {ours_peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()

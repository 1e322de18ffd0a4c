"""What one character of a request costs a worker, to choose PRODCAT_API__MAX_REQUEST_CHARS.

Runs the API's own path for a request (serving/budget.py cleans and measures it, then
serving/predictor.py's predict_items calls the model) on a served champion, each request in
a fresh process: its peak resident memory is reset before the request (/proc/self/clear_refs)
and read after it, so the growth is the request's alone. Request shapes:
- titles: real titles joined up to 1,000 characters, no description (titles count twice);
- descriptions: a real title and a 10,000-character description of real titles;
- nfkd: U+FDFA, which NFKD turns into 18 characters (55 per title, 550 per description);
- digits: random digits and letters, whose n-grams are mostly unknown to the model.
Prints bytes and microseconds per character the model reads, and the limit that keeps the
worst request within 150 MB and 1 s.

Usage: python benchmarks/request_cost.py --state DIR [--chars 100000,250000,300000]
(DIR: a state directory whose serving/models/ holds the champion, as api_load.py leaves it).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_BUDGET, TIME_BUDGET = 150 * 2**20, 1.0
SHAPES = ("titles", "descriptions", "nfkd", "digits")


def load_model(state: Path):
    """The champion's local copy in a state directory, as the API serves it."""
    import mlflow.sklearn

    from prodcat.serving.model_store import LoadedModel

    models = state / "serving" / "models"
    current = json.loads((models / "current.json").read_text())
    model = mlflow.sklearn.load_model(str(models / current["path"]))
    return LoadedModel(model, current["version"], "local-copy")


def make_items(shape: str, chars: int, seed: int = 7) -> list[dict]:
    """Items of one shape whose documents add up to about chars characters."""
    import pandas as pd

    from prodcat.config import Settings

    rng = random.Random(seed)
    source = ROOT / Settings().data.raw_dir / "designations.csv"
    titles = pd.read_csv(source)["designation"]
    text = " ".join(titles.dropna().sample(5000, random_state=seed))
    if shape == "titles":
        item = lambda i: {"title": text[i * 997 % 100_000 :][:1000]}  # noqa: E731
        per_item = 2 * 1000 + 3
    elif shape == "descriptions":
        item = lambda i: {"title": text[i * 50 : i * 50 + 50],  # noqa: E731
                          "description": text[i * 9973 % 200_000 :][:10_000]}  # fmt: skip
        per_item = 2 * 50 + 10_000 + 6
    elif shape == "nfkd":
        item = lambda i: {"title": "\ufdfa" * 55, "description": "\ufdfa" * 550}  # noqa: E731
        per_item = 2 * 990 + 9900 + 6
    else:
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyz "
        item = lambda i: {"title": "".join(rng.choices(alphabet, k=1000))}  # noqa: E731
        per_item = 2 * 1000 + 3
    return [item(i) for i in range(max(1, chars // per_item))]


def measure_one(state: Path, shape: str, chars: int) -> dict:
    """One request in this process: memory growth and time of cleaning and the model call."""
    from prodcat.config import Settings
    from prodcat.serving.budget import Limits, clean_items
    from prodcat.serving.metrics import read_memory
    from prodcat.serving.predictor import predict_items
    from prodcat.serving.schemas import PredictRequest

    loaded = load_model(state)
    limits = Limits.from_settings(Settings(api={"max_request_chars": 10**9}))
    warm = [PredictRequest(title="console manette")]
    predict_items(loaded, clean_items(loaded.cleaner, warm, limits, ("body",)), warm, [3])
    items = [PredictRequest(**i) for i in make_items(shape, chars)]
    Path("/proc/self/clear_refs").write_text("5")  # peak resident memory := resident now
    before, _ = read_memory()
    started = time.perf_counter()
    docs = clean_items(loaded.cleaner, items, limits, ("body", "items"))
    predict_items(loaded, docs, items, [3] * len(items))
    seconds = time.perf_counter() - started
    _, peak = read_memory()
    return {"shape": shape, "items": len(items), "chars": sum(map(len, docs)),
            "growth_mib": (peak - before) / 2**20, "seconds": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--chars", default="100000,250000,300000")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # shape chars, in a child
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.state, args.one[0], int(args.one[1]))))
        return
    rows = []
    print(
        f"{'shape':>12} {'items':>6} {'chars':>8} {'MiB':>7} {'s':>6} {'B/char':>7} {'us/char':>8}"
    )
    for chars in [int(c) for c in args.chars.split(",")]:
        for shape in SHAPES:
            command = [sys.executable, __file__, "--state", str(args.state), "--one", shape]
            out = subprocess.run([*command, str(chars)], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["bytes_per_char"] = r["growth_mib"] * 2**20 / r["chars"]
            r["us_per_char"] = r["seconds"] * 1e6 / r["chars"]
            rows.append(r)
            print(f"{shape:>12} {r['items']:>6} {r['chars']:>8} {r['growth_mib']:7.1f} "
                  f"{r['seconds']:6.2f} {r['bytes_per_char']:7.0f} {r['us_per_char']:8.2f}",
                  flush=True)  # fmt: skip
    worst_bytes = max(r["bytes_per_char"] for r in rows)
    worst_us = max(r["us_per_char"] for r in rows)
    by_memory, by_time = MEMORY_BUDGET / worst_bytes, TIME_BUDGET * 1e6 / worst_us
    print(
        f"worst: {worst_bytes:.0f} bytes and {worst_us:.2f} us per character; "
        f"150 MB allows {by_memory:,.0f} characters, 1 s allows {by_time:,.0f}"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()

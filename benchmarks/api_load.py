"""Load on the real prediction API, serving a champion trained on the shared Rakuten data.

What it does, all through the package and the real services (own state directory; ports +600,
except those given as PRODCAT_*_PORT variables):
1. starts PostgreSQL, S3 and MLflow, ingests the whole designations file batch by batch;
2. trains with the `winner` profile (the full search's best configuration), evaluates,
   gates and promotes it, exactly as ml_pipeline does;
3. starts the API as the stack runs it (`prodcat serve`, PRODCAT_API__WORKERS workers);
4. drives closed-loop load with wrk on 127.0.0.1: single-item POST /predict/ at concurrency
   1, 16 and 64, rotating over 2,000 real titles; then times 1,000-item /predict/batch calls;
5. prints throughput, p50/p95/p99 latency, the batch latency and the server's resident memory;
6. sends the worst request the budget accepts (PRODCAT_API__MAX_REQUEST_CHARS characters of
   real text after cleaning) and prints its time and the growth of the worker's peak memory;
7. floods the API with worst-case requests from --flood clients while wrk sends single
   predictions at concurrency 16, and prints both throughputs and the answers' statuses.

With --shadow, it measures only the cost of the shadow challenger instead: a second
registered copy of the champion gets the `challenger` alias, and API servers with
PRODCAT_API__SHADOW_SAMPLE=0 and 0.1 take turns under wrk at concurrency 16 (--rounds each),
since two runs of this script differ by up to 10%.

Usage: python benchmarks/api_load.py [--seconds 20] [--keep] [--state DIR] [--flood 12]
       [--shadow [--rounds 3]]
(needs `wrk`: apt-get install wrk). With --state, the directory is kept and a later run with
the same directory serves the champion already in it instead of training again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_EXPLICIT = {k: v for k, v in os.environ.items() if k.startswith("PRODCAT_") and k.endswith("PORT")}
from tests.conftest import port_overrides  # noqa: E402  (shares the port-shifting helper)

os.environ.update({**port_overrides(600), **_EXPLICIT})
os.environ.update({"PRODCAT_TRAINING__PROFILE": "winner", "PRODCAT_API__LOG_RAW_TEXT": "true"})

import httpx  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

from prodcat.config import get_settings  # noqa: E402
from prodcat.logging_setup import configure_logging  # noqa: E402
from tests.models import worst_case_items  # noqa: E402

WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "/predict/", nil, bodies[i])
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format('{"requests": %%d, "seconds": %%f, "errors": %%d, "p50": %%f,'
    .. ' "p95": %%f, "p99": %%f, "max": %%f}\\n', summary.requests, summary.duration / 1e6,
    errors, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "prodcat.cli", *args], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip


def train_champion() -> dict:
    from prodcat.data.ingest import ingest_next_batch
    from prodcat.data.reset import reset_data
    from prodcat.training.steps import (
        evaluate_challenger,
        gate_version,
        promote_if_approved,
        train_challenger,
    )

    date, batches = datetime(2026, 1, 1, tzinfo=UTC), 0
    reset_data(confirm=True)  # carves the evaluation set
    while not ingest_next_batch(f"bench-{batches}", date).exhausted:
        batches += 1
    started = time.perf_counter()
    trained = train_challenger(date)
    metrics = evaluate_challenger(trained["run_id"], trained["version"])
    champion = promote_if_approved(gate_version(trained["version"]))
    return {"batches": batches, "version": champion, "train_s": time.perf_counter() - started,
            "eval_f1": metrics["f1_weighted"]}  # fmt: skip


def real_titles(limit: int) -> list[dict]:
    from prodcat.data.dataset import iter_source, load_dataset_spec

    settings = get_settings()
    rows = pd.concat(list(iter_source(load_dataset_spec(settings), settings.data.raw_dir)))
    sample = rows.sample(limit, random_state=7)
    descriptions = sample["description"].fillna("")
    return [{"title": t, "description": d or None}
            for t, d in zip(sample["title"], descriptions, strict=True)]  # fmt: skip


def run_wrk(url: str, bodies: Path, connections: int, seconds: int) -> dict:
    script = bodies.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % {"bodies": bodies})
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def time_batches(url: str, items: list[dict], runs: int = 20) -> list[float]:
    timings = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(runs + 2):
            started = time.perf_counter()
            response = client.post("/predict/batch", json={"items": items})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            assert len(response.json()["predictions"]) == len(items)
            timings.append(elapsed * 1000)
    return timings[2:]  # the first calls warm the caches


def time_explain(url: str, items: list[dict], runs: int = 600) -> None:
    """p50 of one-item requests with and without ?explain=true, interleaved, on one client."""
    plain, explained = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/predict/?explain=true", json=items[0]).raise_for_status()  # names built
        for i in range(runs):
            for path, timings in (("/predict/", plain), ("/predict/?explain=true", explained)):
                started = time.perf_counter()
                client.post(path, json=items[i % len(items)]).raise_for_status()
                timings.append((time.perf_counter() - started) * 1000)
    p50, p50_explained = statistics.median(plain), statistics.median(explained)
    print(f"one item, p50 over {runs}: {p50:.2f} ms plain, {p50_explained:.2f} ms with explain "
          f"(+{p50_explained - p50:.2f} ms; target at most +1 ms)")  # fmt: skip


def server_rss_mib(state: Path) -> float:
    tree = api_processes(state)
    return sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20


def api_processes(state: Path) -> list[psutil.Process]:
    """The API's supervisor and its children."""
    from prodcat.stack import Stack

    stack = Stack(get_settings(), ROOT)
    return stack.processes(stack.select(["api"])[0])


def api_workers(state: Path) -> list[psutil.Process]:
    return [p for p in api_processes(state)[1:] if "resource_tracker" not in " ".join(p.cmdline())]


def reset_peak(process: psutil.Process) -> int:
    """Make the process's peak resident memory its resident memory now; that, in bytes."""
    Path(f"/proc/{process.pid}/clear_refs").write_text("5")
    return process.memory_info().rss


def peak_rss(process: psutil.Process) -> int:
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def time_worst_case(url: str, state: Path, items: list[dict], runs: int = 6) -> None:
    """The worst accepted request, runs times: its time and the worker's peak memory growth."""
    workers, timings, growths = api_workers(state), [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(runs):
            before = {w.pid: reset_peak(w) for w in workers}
            started = time.perf_counter()
            response = client.post("/predict/batch", json={"items": items})
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            growths.append(max(peak_rss(w) - before[w.pid] for w in workers) / 2**20)
        over = [*items[:-1], {**items[-1], "title": items[-1]["title"] + "z"}]
        refused = client.post("/predict/batch", json={"items": over}).status_code
    size = len(json.dumps({"items": items}, ensure_ascii=False).encode())
    print(
        f"worst accepted request ({get_settings().api.max_request_chars:,} characters, "
        f"{len(items)} items, {size / 1024:.0f} KiB): median {statistics.median(timings):.0f} "
        f"ms, max {max(timings):.0f} ms; worker peak memory +{growths[0]:.0f} MiB on the "
        f"first, +{max(growths):.0f} MiB at most; one character more: {refused}"
    )


def flood(url: str, bodies: Path, items: list[dict], clients: int, seconds: int) -> None:
    """wrk's single predictions at concurrency 16 while clients send worst-case requests."""
    statuses, stop = Counter(), threading.Event()

    def send_worst_cases() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while not stop.is_set():
                statuses[client.post("/predict/batch", json={"items": items}).status_code] += 1

    threads = [threading.Thread(target=send_worst_cases) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # the flood is on before wrk starts
    r = run_wrk(url, bodies, 16, seconds)
    stop.set()
    for thread in threads:
        thread.join()
    print(
        f"flood of {clients} clients sending worst-case requests: single predictions "
        f"{r['rps']:.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max "
        f"{r['max']:.0f} ms, {r['errors']} errors (non-2xx included); worst-case answers "
        f"{dict(statuses)}, {statuses[200] / (seconds + 2):.1f} accepted per second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20, help="per concurrency level")
    parser.add_argument("--keep", action="store_true", help="leave the services running")
    parser.add_argument("--state", type=Path, help="a state directory kept between runs")
    parser.add_argument("--flood", type=int, default=12, help="clients sending worst cases")
    parser.add_argument("--shadow", action="store_true", help="measure shadowing's cost only")
    parser.add_argument("--rounds", type=int, default=3, help="--shadow: turns of each server")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    state = prepare_state(args.state)
    configure_logging("INFO")
    settings = get_settings()
    print(f"state {state}; API workers: {settings.api.workers}", flush=True)
    try:
        cli("stack", "up", "postgres", "s3", "mlflow")
        report_champion()
        cli("stack", "down", "api")  # a kept server may run older code
        items = real_titles(2000)
        bodies = state / "bodies.jsonl"
        bodies.write_text("\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n")
        if args.shadow:
            measure_shadow(state, bodies, args.seconds, args.rounds)
            return
        cli("stack", "up", "api")
        url = settings.api.url
        run_wrk(url, bodies, 16, 5)  # warm-up
        print(f"{'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
              f"{'max ms':>8} {'errors':>7}")  # fmt: skip
        for connections in (1, 16, 64):
            r = run_wrk(url, bodies, connections, args.seconds)
            print(f"{connections:>11} {r['rps']:8.0f} {r['p50']:8.2f} {r['p95']:8.2f} "
                  f"{r['p99']:8.2f} {r['max']:8.2f} {r['errors']:7d}", flush=True)  # fmt: skip
        timings = time_batches(url, items[:1000])
        print(
            f"1,000-item /predict/batch over {len(timings)} calls: median "
            f"{statistics.median(timings):.0f} ms, p95 "
            f"{statistics.quantiles(timings, n=20)[-1]:.0f} ms, max {max(timings):.0f} ms"
        )
        print(f"API resident memory (all workers): {server_rss_mib(state):.0f} MiB")
        time_explain(url, items)
        worst = worst_case_items(settings.api.max_request_chars)
        time_worst_case(url, state, worst)
        flood(url, bodies, worst, args.flood, args.seconds)
        print(
            f"API resident memory (all workers) after the flood: {server_rss_mib(state):.0f} "
            f"MiB; workers alive: {len(api_workers(state))}"
        )
    finally:
        if not args.keep:
            cli("stack", "down")
            if not args.state:
                shutil.rmtree(state, ignore_errors=True)


def measure_shadow(state: Path, bodies: Path, seconds: int, rounds: int) -> None:
    """Req/s and p99 at concurrency 16 without and with a shadow challenger (sample 0.1),
    servers taking turns; the medians and the change."""
    from prodcat.training.registry import get_champion, load_version, set_challenger
    from tests.models import api_server

    settings = get_settings()
    register_copy = load_version(get_champion(settings).version, settings)
    set_challenger(register_version(register_copy), settings)
    results: dict[float, list[dict]] = {0.0: [], 0.1: []}
    for turn in range(rounds * 2):
        sample = 0.1 if turn % 2 else 0.0
        env = {**os.environ, "PRODCAT_API__SHADOW_SAMPLE": str(sample)}
        with api_server(
            Path(sys.executable).parent,
            settings.api.port,
            env,
            state / f"api-shadow-{turn}.log",
            workers=settings.api.workers,
        ) as url:
            time.sleep(3)  # the challenger loads after the first reload poll starts
            run_wrk(url, bodies, 16, 5)  # warm-up
            results[sample].append(r := run_wrk(url, bodies, 16, seconds))
        print(f"shadow sample {sample}: {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms, "
              f"errors {r['errors']}", flush=True)  # fmt: skip
    base, shadow = ({k: statistics.median(r[k] for r in results[s]) for k in ("rps", "p99")}
                    for s in (0.0, 0.1))  # fmt: skip
    print(
        f"median over {rounds} turns: without {base['rps']:.0f} req/s p99 {base['p99']:.2f} ms;"
        f" with 0.1 {shadow['rps']:.0f} req/s p99 {shadow['p99']:.2f} ms; throughput "
        f"{100 * (shadow['rps'] / base['rps'] - 1):+.1f}%, p99 "
        f"{100 * (shadow['p99'] / base['p99'] - 1):+.1f}% (targets: at most -10%, +10%)"
    )


def register_version(model) -> str:
    """Register a model as a new version of the configured name; its version."""
    import mlflow
    import mlflow.sklearn

    from prodcat.integrity import tag_artifact_digest
    from prodcat.training.registry import use_mlflow

    settings = get_settings()
    use_mlflow(settings)
    mlflow.set_experiment(settings.mlflow.experiment)
    with mlflow.start_run(run_name="shadow-challenger-bench"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            registered_model_name=settings.mlflow.model_name,
        )
    version = str(info.registered_model_version)
    tag_artifact_digest(version, settings)
    return version


def prepare_state(path: Path | None) -> Path:
    """The state directory (a fresh temporary one unless given), traversable by postgres."""
    state = path.resolve() if path else Path(tempfile.mkdtemp(prefix="prodcat-api-bench-"))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    os.environ["PRODCAT_STATE_DIR"] = str(state)
    return state


def report_champion() -> None:
    """Train and promote a champion, unless the state directory already has one."""
    from prodcat.training.registry import get_alias_version

    champion = get_alias_version("champion")
    if champion is not None:
        print(f"champion v{champion.version} already in the state directory", flush=True)
        return
    trained = train_champion()
    print(f"champion v{trained['version']}: {trained['batches']} batches ingested, "
          f"trained in {trained['train_s']:.0f} s, eval F1 {trained['eval_f1']:.4f}",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

"""Normal-traffic throughput of this checkout's API against another commit's, interleaved.

Two runs of api_load.py minutes apart differ by up to 10% on this 2-core machine, more than
the differences worth finding. This compares two servers under the same conditions: each
round starts both fresh (this checkout's `prodcat serve` and the other commit's, from a git
worktree), warms both, then measures single-item POST /predict/ at concurrency 16 with wrk
on each in turn, the order alternating between rounds. It prints every round, the medians
and the per-round ratio.

Usage: python benchmarks/api_ab.py --state DIR --base REF [--this REF] [--rounds 6]
[--seconds 15]; --this measures another commit instead of this checkout (to bisect).
DIR is a state directory holding a champion, as `benchmarks/api_load.py --state DIR` leaves
it; its PostgreSQL, S3 and MLflow are started if they are down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import httpx  # noqa: E402

from benchmarks.api_load import cli, prepare_state, real_titles, run_wrk  # noqa: E402


def start_server(tree: Path, port: int, state: Path) -> subprocess.Popen:
    """`prodcat serve` from the source tree `tree`, on `port`, with its own metrics dir."""
    metrics = state / f"ab-metrics-{port}"
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PRODCAT_API__PORT": str(port),
           "PROMETHEUS_MULTIPROC_DIR": str(metrics)}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "prodcat.cli", "serve"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            sys.exit(f"the server from {tree} exited with {process.returncode}")
        time.sleep(0.5)
    sys.exit(f"the server from {tree} was not ready in 120 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def run_round(trees: dict[str, Path], state: Path, bodies: Path, seconds: int,
              order: list[str]) -> dict[str, float]:  # fmt: skip
    """Both servers fresh and warm; each measured once, in `order`; req/s by name."""
    ports = {"this": 8950, "base": 8960}
    servers = {name: start_server(trees[name], ports[name], state) for name in order}
    try:
        for name in order:
            run_wrk(f"http://127.0.0.1:{ports[name]}", bodies, 16, 5)
        return {name: run_wrk(f"http://127.0.0.1:{ports[name]}", bodies, 16, seconds)["rps"]
                for name in order}  # fmt: skip
    finally:
        for server in servers.values():
            stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, required=True, help="holds a champion")
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--this", help="a commit to measure instead of this checkout")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=15, help="per measurement")
    args = parser.parse_args()
    state = prepare_state(args.state)
    cli("stack", "up", "postgres", "s3", "mlflow")
    bodies = state / "ab-bodies.jsonl"
    bodies.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in real_titles(2000)))
    trees = {"base": add_worktree(args.base)}
    trees["this"] = add_worktree(args.this) if args.this else ROOT
    try:
        compare(trees, state, bodies, args)
    finally:
        for tree in {trees["base"], trees["this"]} - {ROOT}:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)


def add_worktree(ref: str) -> Path:
    """A detached git worktree of ref in a temporary directory."""
    tree = Path(tempfile.mkdtemp(prefix="prodcat-ab-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    return tree


def compare(trees: dict[str, Path], state: Path, bodies: Path, args: argparse.Namespace) -> None:
    """Run the rounds and print each, then the medians and ratios."""
    print(f"single-item POST /predict/, concurrency 16, {args.seconds} s per measurement; "
          f"{args.this or 'this checkout'} against {args.base}", flush=True)  # fmt: skip
    results = []
    for round_ in range(args.rounds):
        order = ["this", "base"] if round_ % 2 == 0 else ["base", "this"]
        r = run_round(trees, state, bodies, args.seconds, order)
        results.append(r)
        print(f"round {round_ + 1} ({order[0]} first): this {r['this']:.0f} req/s, base "
              f"{r['base']:.0f} req/s, ratio {r['this'] / r['base']:.3f}", flush=True)  # fmt: skip
    ratios = [r["this"] / r["base"] for r in results]
    print(
        f"median: this {statistics.median(r['this'] for r in results):.0f} req/s, base "
        f"{statistics.median(r['base'] for r in results):.0f} req/s; ratio median "
        f"{statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}"
    )


if __name__ == "__main__":
    main()

"""Time `prodcat stack up` from an empty state directory to all-healthy, and the stack's memory.

Usage: python benchmarks/stack_up.py [--keep]
Uses its own state directory and ports (+400), so a running stack is not disturbed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import port_overrides  # noqa: E402  (shares the port-shifting helper)


def stack_rss_mib(stack) -> dict[str, float]:
    """Resident memory of each service's whole process tree, in MiB."""
    result = {}
    for service in stack.services:
        tree = stack.processes(service)
        if tree:
            result[service.name] = sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="prodcat-bench-"))
    state.chmod(0o755)
    env = {**os.environ, **port_overrides(400), "PRODCAT_STATE_DIR": str(state)}
    cli = [sys.executable, "-m", "prodcat.cli", "stack"]

    started = time.monotonic()
    subprocess.run([*cli, "up"], env=env, cwd=ROOT, check=True, capture_output=True)
    cold = time.monotonic() - started
    time.sleep(20)  # let the services settle before measuring memory
    os.environ.update(env)  # this process reads the same settings as the CLI it ran
    from prodcat.config import Settings
    from prodcat.stack import Stack

    rss = stack_rss_mib(Stack(Settings(), ROOT))
    started = time.monotonic()
    subprocess.run([*cli, "down"], env=env, cwd=ROOT, check=True, capture_output=True)
    down = time.monotonic() - started
    started = time.monotonic()
    subprocess.run([*cli, "up"], env=env, cwd=ROOT, check=True, capture_output=True)
    warm = time.monotonic() - started
    if not args.keep:
        subprocess.run([*cli, "down"], env=env, cwd=ROOT, check=True, capture_output=True)

    print(f"cold up (empty state) to all healthy: {cold:6.1f} s")
    print(f"down:                                 {down:6.1f} s")
    print(f"warm up (existing state):             {warm:6.1f} s")
    print("resident memory per service (process tree):")
    for name, mib in rss.items():
        print(f"  {name:<22} {mib:8.1f} MiB")
    print(f"  {'total':<22} {sum(rss.values()):8.1f} MiB")
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()

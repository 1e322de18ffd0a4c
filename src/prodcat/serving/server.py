"""Running the API: uvicorn worker processes, each listening on a socket of its own.

`uvicorn --workers N` shares one listening socket, and the worker that wakes first accepts
every connection waiting. A client opening 16 connections at once had 12 to 14 of them
served by one worker and the rest by the other: half the throughput, three times the tail
latency. With SO_REUSEPORT, each worker has its own socket and the kernel spreads new
connections over them. A small supervisor restarts a worker that dies and stops them all
on SIGTERM or SIGINT, each finishing its requests and flushing its prediction log.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from prodcat.config import Settings, get_settings

log = logging.getLogger(__name__)
APP_FACTORY = "prodcat.serving.app:create_app"
# Optional imports a worker never uses. pandas imports pyarrow whenever it is installed
# (MLflow needs it for training), and it cost 33 MiB in every worker.
UNUSED_IN_WORKERS = ("pyarrow",)


def serve(settings: Settings | None = None) -> None:
    """Serve the API with settings.api.workers processes until SIGTERM or SIGINT."""
    settings = settings or get_settings()
    cfg = settings.api
    check_port_free(cfg.host, cfg.port)
    # One worker too runs under the supervisor: restarted if it dies, metrics directory made.
    reset_metrics_dir(settings)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers = [_start(context, cfg.host, cfg.port) for _ in range(cfg.workers)]
    log.info("serving on http://%s:%d with %d workers", cfg.host, cfg.port, cfg.workers)
    quick_failures = 0
    while not stop.wait(1.0):
        for i, (worker, started) in enumerate(workers):
            if worker.is_alive():
                continue
            log.warning("worker %d exited (code %s); starting another", worker.pid,
                        worker.exitcode)  # fmt: skip
            mark_worker_dead(worker.pid)
            quick_failures = quick_failures + 1 if time.monotonic() - started < 10 else 0
            if quick_failures >= 5:  # it cannot start (port taken, bad settings): give up
                _stop_all(workers)
                raise SystemExit("workers keep failing at start; see the lines above")
            workers[i] = _start(context, cfg.host, cfg.port)
    _stop_all(workers)


def run_worker(host: str, port: int) -> None:
    """One uvicorn server on its own SO_REUSEPORT socket (runs in the worker process)."""
    skip_unused_imports()
    import uvicorn

    from prodcat.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    _die_with_parent()
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Access lines would cost more than a prediction; /metrics counts every request.
    # Past limit_concurrency connections or requests, uvicorn answers 503 at once.
    config = uvicorn.Config(APP_FACTORY, factory=True, access_log=False,
                            limit_concurrency=settings.api.limit_concurrency)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


def skip_unused_imports() -> None:
    """Make the optional imports in UNUSED_IN_WORKERS fail in this process, as if those
    packages were not installed (a None in sys.modules does that). Call it before the app
    is imported; a package already imported is left alone."""
    for name in UNUSED_IN_WORKERS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def check_port_free(host: str, port: int) -> None:
    """Fail clearly when something listens there already: with SO_REUSEPORT, another server
    of the same user would otherwise silently share the port with ours.

    SO_REUSEADDR, as the workers' sockets have: connections our previous run closed wait in
    TIME_WAIT for a minute and must not stop a restart, while a listener still refuses it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SystemExit(f"cannot serve on {host}:{port}: {error.strerror}") from error


def reset_metrics_dir(settings: Settings) -> None:
    """Point the workers at an empty PROMETHEUS_MULTIPROC_DIR (by default
    $PRODCAT_STATE_DIR/api-metrics): each keeps its metrics in files there and /metrics adds
    them up; files of earlier workers would add up too."""
    state = settings.state_dir
    default = (state if state.is_absolute() else Path.cwd() / state) / "api-metrics"
    path = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(default)))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def mark_worker_dead(pid: int | None) -> None:
    """Drop a dead worker's live gauges from the multi-process metrics."""
    if pid and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _die_with_parent() -> None:
    """Have the kernel stop this worker when the supervisor dies, even by SIGKILL: an
    orphan would keep answering on the shared port with whatever model it has."""
    if multiprocessing.parent_process() is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != multiprocessing.parent_process().pid:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _start(context, host: str, port: int) -> tuple:
    worker = context.Process(target=run_worker, args=(host, port), name="prodcat-api-worker")
    worker.start()
    return worker, time.monotonic()


def _stop_all(workers: list[tuple], timeout: float = 30.0) -> None:
    for worker, _ in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    for worker, _ in workers:
        worker.join(timeout)
        if worker.is_alive():
            log.warning("worker %d did not stop in %.0f s; killing it", worker.pid, timeout)
            worker.kill()
            worker.join()
    log.info("all workers stopped")

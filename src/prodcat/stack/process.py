"""Small helpers for the native stack's processes: ports, waiting, log tails."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path


def is_port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    abort: Callable[[], str | None] | None = None,
) -> bool:
    """Poll check() until it is true or timeout passes; abort() may end the wait early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if abort is not None and abort() is not None:
            return False
        time.sleep(interval)
    return check()


def tail_file(path: Path, lines: int = 20) -> str:
    """The last lines of a text file, or an empty string."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

"""One logging format for the CLI, services and scripts."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send prodcat's logs to stderr at the given level (idempotent)."""
    logging.basicConfig(level=level.upper(), format=FORMAT, datefmt="%H:%M:%S")
    for noisy in ("httpx", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Engine creation and Alembic migrations for the app database."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

from prodcat.config import Settings, get_settings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return _ENGINES[url]


def get_engine(settings: Settings | None = None) -> Engine:
    """The shared engine for the app database (one per URL and process)."""
    return _engine((settings or get_settings()).postgres.url("app"))


def alembic_config(settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's ini interpolation would read '%' in a password as a placeholder.
    url = (settings or get_settings()).postgres.url("app").replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade_database(settings: Settings | None = None, revision: str = "head") -> None:
    """Apply the migrations up to revision (idempotent)."""
    log.info("applying app database migrations up to %s", revision)
    command.upgrade(alembic_config(settings), revision)


def dispose_engines() -> None:
    """Close every pooled connection (before the database goes away)."""
    for engine in _ENGINES.values():
        engine.dispose()


def forget_engines_after_fork() -> None:
    """In a forked child: drop the parent's pooled connections without closing them (they
    are the parent's), so this process opens its own."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)

"""The app database: engine, schema and migrations."""

from prodcat.db.engine import get_engine, upgrade_database

__all__ = ["get_engine", "upgrade_database"]

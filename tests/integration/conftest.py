"""The real services, started once per test session through the same code as `make up`."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from prodcat.config import Settings, get_settings
from prodcat.db.engine import dispose_engines
from prodcat.logging_setup import configure_logging
from prodcat.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    """A healthy native stack; stopped at the end unless it was already up or KEEP_STACK=1."""
    configure_logging("INFO")
    stack = Stack(get_settings())
    already_up = all(s.healthy for s in stack.status())
    stack.up()
    yield stack
    # Pooled connections would outlive the server and complain at interpreter exit.
    if "airflow.settings" in sys.modules:
        sys.modules["airflow.settings"].dispose_orm()
    dispose_engines()
    if not already_up and os.environ.get("PRODCAT_KEEP_STACK") != "1":
        logging.getLogger(__name__).info("stopping the test stack")
        stack.down()


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    return stack.settings

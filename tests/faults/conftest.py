"""Fault tests break the same session-wide test stack that the integration tests use."""

from ..integration.conftest import settings, stack  # noqa: F401

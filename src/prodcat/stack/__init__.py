"""The native service stack for machines without Docker (`make up` / `make down`)."""

from prodcat.stack.manager import ServiceStatus, Stack, StackError, format_status, format_welcome

__all__ = ["ServiceStatus", "Stack", "StackError", "format_status", "format_welcome"]

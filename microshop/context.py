"""Per-request context (request and correlation ids) for logs and event metadata."""

from __future__ import annotations

import contextvars
import re
import uuid

__all__ = ["correlation_id", "event_id", "new_id", "request_id", "valid_id"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
# The event a consumer is handling, for its log lines.
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_id() -> str:
    return uuid.uuid4().hex


def valid_id(value: str | None) -> str | None:
    """`value` when it is a safe id to echo and log (no spaces, quotes or newlines)."""
    return value if value is not None and _SAFE_ID.match(value) else None

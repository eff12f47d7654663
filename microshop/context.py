"""Per-request context: request and correlation ids and the W3C trace, for logs, event
metadata and the calls a service makes on behalf of a request or an event."""

from __future__ import annotations

import contextvars
import re
import secrets
import uuid

from eventstore import Metadata

__all__ = [
    "correlation_id",
    "event_id",
    "event_metadata",
    "new_id",
    "new_traceparent",
    "propagation_headers",
    "request_id",
    "traceparent",
    "valid_id",
    "valid_traceparent",
]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
# The event a consumer is handling, for its log lines.
event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
# The W3C trace context of the work in progress (the current span when tracing is on).
traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "traceparent", default=None
)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def new_id() -> str:
    return uuid.uuid4().hex


def valid_id(value: str | None) -> str | None:
    """`value` when it is a safe id to echo and log (no spaces, quotes or newlines)."""
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


def valid_traceparent(value: str | None) -> str | None:
    """`value` when it is a well-formed W3C traceparent (version 00, non-zero ids)."""
    if value is None:
        return None
    value = value.strip()
    match = _TRACEPARENT.match(value)
    if match is None or match[1] == "0" * 32 or match[2] == "0" * 16:
        return None
    return value


def new_traceparent() -> str:
    """The start of a new trace (sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def propagation_headers() -> dict[str, str]:
    """The correlation id and trace context to pass on with a call made for this work."""
    headers = {}
    if (cid := correlation_id.get()) is not None:
        headers["X-Correlation-ID"] = cid
    if (trace := traceparent.get()) is not None:
        headers["traceparent"] = trace
    return headers


def event_metadata(
    service: str, *, actor: str | None = None, causation_id: str | None = None
) -> Metadata:
    """Metadata for events recorded by this work: its correlation id and trace context."""
    return Metadata(
        correlation_id=correlation_id.get(),
        causation_id=causation_id,
        actor=actor,
        service=service,
        traceparent=traceparent.get(),
    )

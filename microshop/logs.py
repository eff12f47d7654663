"""JSON log lines: service, level, message, request and correlation ids, extras."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

from . import context

__all__ = ["JsonFormatter", "setup_logging"]

_encode = msgspec.json.Encoder(decimal_format="string").encode

# Attributes every LogRecord has; anything else passed in `extra=` goes into the line.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the shape log-service stores."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "service": self.service,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or context.request_id.get(),
            "correlation_id": getattr(record, "correlation_id", None)
            or context.correlation_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _safe(line)


def _safe(line: dict[str, Any]) -> str:
    try:
        return _encode(line).decode()
    except (TypeError, msgspec.EncodeError):
        return _encode({k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                        for k, v in line.items()}).decode()  # fmt: skip


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines tagged with `service`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

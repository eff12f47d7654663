"""JSON log lines and how `microshop up` renders them."""

from __future__ import annotations

import io
import json
import logging

from microshop import context
from microshop.logs import JsonFormatter
from microshop.supervisor import Supervisor


def test_json_lines_carry_service_ids_and_extras() -> None:
    record = logging.LogRecord("shop", logging.ERROR, __file__, 1, "paid %s", ("o-1",), None)
    record.order_id = "o-1"
    token = context.correlation_id.set("corr-9")
    try:
        line = json.loads(JsonFormatter("order").format(record))
    finally:
        context.correlation_id.reset(token)
    assert line["service"] == "order"
    assert line["level"] == "ERROR"
    assert line["message"] == "paid o-1"
    assert line["correlation_id"] == "corr-9"
    assert line["order_id"] == "o-1"
    assert line["ts"].endswith("Z")


def test_unserialisable_extras_do_not_break_logging() -> None:
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "x", (), None)
    record.thing = object()
    assert "object object" in json.loads(JsonFormatter("s").format(record))["thing"]


def test_supervisor_renders_json_and_passes_other_lines_through() -> None:
    supervisor = Supervisor(["relay"], env={}, out=io.StringIO())
    rendered = supervisor.render(
        json.dumps(
            {
                "ts": "2026-11-25T10:11:12.345Z",
                "service": "relay",
                "level": "WARNING",
                "message": "relay interrupted",
                "logger": "x",
                "request_id": None,
                "correlation_id": "c",
            }
        )
    )
    assert rendered == "10:11:12.345 WARNING relay interrupted  correlation_id=c"
    assert supervisor.render("Traceback (most recent call last):") == (
        "Traceback (most recent call last):"
    )
    assert supervisor.env["INTERNAL_API_KEY"]  # a random key when none is set


def test_supervisor_renders_access_lines_without_repeating_their_fields() -> None:
    supervisor = Supervisor(["gateway"], env={}, out=io.StringIO())
    rendered = supervisor.render(
        json.dumps(
            {
                "ts": "2026-11-25T10:11:12.345Z",
                "service": "gateway",
                "level": "INFO",
                "logger": "microshop.access",
                "message": "GET /api/products 200 2.4ms",
                "request_id": "r",
                "correlation_id": "c",
                "method": "GET",
                "route": "/api/products",
                "status": 200,
                "duration_ms": 2.36,
            }
        )
    )
    assert rendered == "10:11:12.345 INFO    GET /api/products 200 2.4ms  correlation_id=c"

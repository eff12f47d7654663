"""Tracing: the W3C trace context across HTTP hops and events, and spans over OTLP/HTTP.

A small OTLP collector (an aiohttp server decoding the protobuf export requests) stands in
for Jaeger; two kernel apps, "front" calling "back", play the services.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from eventstore import HandlerContext, Metadata, RecordedEvent
from microshop import context
from microshop.app import make_app
from microshop.appkeys import HTTP
from microshop.client import ServiceClient
from microshop.http import json_response
from microshop.workers import in_event_context
from tests.conftest import StackEnv, stand_in
from tests.tokens import TEST_KEYS

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class Collector:
    """Receives OTLP/HTTP trace exports; `spans` are (service, span) pairs."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.url = ""

    async def export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend((attributes["service.name"], s) for s in scope.spans)
        return web.Response(content_type="application/x-protobuf", body=b"")

    def named(self, service: str, prefix: str) -> Any:
        found = [s for svc, s in self.spans if svc == service and s.name.startswith(prefix)]
        assert len(found) == 1, (service, prefix, [(v, s.name) for v, s in self.spans])
        return found[0]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    collector = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.export)
    async with stand_in(app) as collector.url:
        yield collector


def back_app(config: Any, seen: dict[str, Any]) -> web.Application:
    async def work(request: web.Request) -> web.Response:
        seen["traceparent"] = context.traceparent.get()
        seen["metadata"] = context.event_metadata("back")
        seen["correlation_id"] = context.correlation_id.get()
        return json_response({"ok": True})

    return make_app(
        config, "back", routes=[web.get("/work", work)], database=False, token_keys=TEST_KEYS
    )


def front_app(config: Any, back_url: str) -> web.Application:
    async def start(request: web.Request) -> web.Response:
        back = ServiceClient(request.app[HTTP], "back", back_url)  # as services call
        reply = await back.get("/work")
        return json_response({"back": reply.status})

    return make_app(
        config, "front", routes=[web.get("/start/{n}", start)], database=False, token_keys=TEST_KEYS
    )


def hex_of(raw: bytes) -> str:
    return raw.hex()


async def test_spans_follow_the_request_across_services(
    test_env: StackEnv, collector: Collector
) -> None:
    config = test_env.config(otel_exporter_otlp_endpoint=collector.url, log_shipping=False)
    seen: dict[str, Any] = {}
    back = TestClient(TestServer(back_app(config, seen)))
    await back.start_server()
    front = TestClient(TestServer(front_app(config, str(back.make_url("")).rstrip("/"))))
    await front.start_server()
    try:
        resp = await front.get(
            "/start/7", headers={"traceparent": CALLER, "X-Correlation-ID": "corr-trace"}
        )
        assert resp.status == 200
    finally:
        await front.close()  # shutting down flushes the spans
        await back.close()

    server = collector.named("front", "GET /start/{n}")
    client = collector.named("front", "GET 127.0.0.1")
    back_server = collector.named("back", "GET /work")
    assert {hex_of(s.trace_id) for s in (server, client, back_server)} == {TRACE_ID}
    assert hex_of(server.parent_span_id) == PARENT_SPAN
    assert client.parent_span_id == server.span_id
    assert back_server.parent_span_id == client.span_id
    kinds = (server.kind, client.kind, back_server.kind)
    assert kinds == (2, 3, 2)  # SERVER, CLIENT, SERVER
    route = {a.key: a.value for a in server.attributes}["http.route"]
    assert route.string_value == "/start/{n}"

    # the back service works (and records events) inside its own server span
    assert seen["traceparent"] == f"00-{TRACE_ID}-{hex_of(back_server.span_id)}-01"
    assert seen["metadata"].traceparent == seen["traceparent"]
    assert seen["correlation_id"] == "corr-trace"  # passed on by the app's client


async def test_a_consumer_handles_an_event_in_a_child_span(
    test_env: StackEnv, collector: Collector
) -> None:
    config = test_env.config(otel_exporter_otlp_endpoint=collector.url, log_shipping=False)
    app = make_app(config, "worker", database=False, token_keys=TEST_KEYS)
    client = TestClient(TestServer(app))
    await client.start_server()
    seen: dict[str, Any] = {}

    async def handler(ctx: HandlerContext) -> None:
        seen.update(
            trace=context.traceparent.get(),
            correlation=context.correlation_id.get(),
            event_id=context.event_id.get(),
        )

    event = RecordedEvent(
        1,
        1,
        "order-1",
        1,
        uuid.uuid4(),
        "OrderPlaced",
        1,
        {},
        Metadata(correlation_id="corr-event", traceparent=CALLER),
        datetime.now(UTC),
    )
    try:
        await in_event_context(app, handler)(HandlerContext(None, event, 2))  # type: ignore[arg-type]
    finally:
        await client.close()
    span = collector.named("worker", "handle OrderPlaced")
    assert span.kind == 5  # CONSUMER
    assert (hex_of(span.trace_id), hex_of(span.parent_span_id)) == (TRACE_ID, PARENT_SPAN)
    assert seen == {
        "trace": f"00-{TRACE_ID}-{hex_of(span.span_id)}-01",
        "correlation": "corr-event",
        "event_id": str(event.event_id),
    }


async def test_without_an_endpoint_the_trace_still_travels(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    config = test_env.config(otel_exporter_otlp_endpoint="", log_shipping=False)
    seen: dict[str, Any] = {}
    back = await aiohttp_client(back_app(config, seen))
    front = await aiohttp_client(front_app(config, str(back.make_url("")).rstrip("/")))
    assert (await front.get("/start/1", headers={"traceparent": CALLER})).status == 200
    assert seen["traceparent"] == CALLER  # passed along as is when nobody records spans
    assert (await front.get("/start/2", headers={"traceparent": "00-zz-bad"})).status == 200
    assert seen["traceparent"].split("-")[1] != TRACE_ID  # malformed: a new trace


def test_without_an_endpoint_the_sdk_is_never_loaded() -> None:
    script = (
        "import sys\n"
        "from microshop.config import Config\n"
        "from services.gateway.app import create_app\n"
        "create_app(Config.from_env({}))\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

"""Optional distributed tracing: OpenTelemetry spans sent over OTLP/HTTP.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set, every service records a server span per request
(child of the caller's `traceparent`), a client span per call it makes, and a consumer span
per event it handles (child of the `traceparent` in the event's metadata), and ships them in
batches from a background thread. Unset, the SDK is never imported and every hook below is
one dictionary lookup.

Whether or not spans are recorded, the W3C trace context travels: `context.traceparent`
holds the current one, outgoing calls carry it and events store it in their metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web

from . import context
from .appkeys import CONFIG, SERVICE

__all__ = [
    "TRACING",
    "Tracing",
    "client_trace_config",
    "tracing_context",
    "tracing_middleware",
]

log = logging.getLogger(__name__)


class Tracing:
    """A tracer provider for one service, exporting to `{endpoint}/v1/traces`."""

    def __init__(self, service: str, endpoint: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.kinds = SpanKind
        self._status, self._error = Status, StatusCode.ERROR
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("microshop")
        self.propagator = TraceContextTextMapPropagator()

    def _parent(self, traceparent: str | None) -> Any:
        return self.propagator.extract({"traceparent": traceparent}) if traceparent else None

    def start(self, name: str, kind: Any, *, parent: str | None, **attributes: Any) -> Any:
        """A started span, child of the `parent` traceparent (a new trace when None)."""
        return self.tracer.start_span(
            name, context=self._parent(parent), kind=kind, attributes=attributes
        )

    def traceparent_of(self, span: Any) -> str:
        ctx = span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    def failed(self, span: Any, description: str) -> None:
        span.set_status(self._status(self._error, description))

    @contextlib.contextmanager
    def span(self, name: str, kind: Any, **attributes: Any) -> Iterator[Any]:
        """A span around the block, child of `context.traceparent`, which it replaces
        for the block's duration (so calls and events made inside are its children)."""
        span = self.start(name, kind, parent=context.traceparent.get(), **attributes)
        token = context.traceparent.set(self.traceparent_of(span))
        try:
            yield span
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                span.record_exception(exc)
                self.failed(span, type(exc).__name__)
            raise
        finally:
            context.traceparent.reset(token)
            span.end()

    def shutdown(self) -> None:
        """Export what is pending (blocking: call it off the event loop)."""
        self.provider.force_flush(timeout_millis=5000)
        self.provider.shutdown()


TRACING = web.AppKey("tracing", Tracing)


async def tracing_context(app: web.Application) -> AsyncIterator[None]:
    """Set up `app[TRACING]` when OTEL_EXPORTER_OTLP_ENDPOINT is set; flush at shutdown."""
    endpoint = app[CONFIG].otel_exporter_otlp_endpoint
    if not endpoint:
        yield
        return
    tracing = app[TRACING] = Tracing(app[SERVICE], endpoint)
    log.info("tracing: spans go to %s", endpoint)
    try:
        yield
    finally:
        await asyncio.get_running_loop().run_in_executor(None, tracing.shutdown)


@web.middleware
async def tracing_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A server span per request (inside the context middleware, which adopted the
    caller's traceparent)."""
    tracing = request.app.get(TRACING)
    if tracing is None:
        return await handler(request)
    with tracing.span(
        f"{request.method} {request.path}",
        tracing.kinds.SERVER,
        **{"http.request.method": request.method, "url.path": request.path},
    ) as span:
        response = await handler(request)
        route = request.match_info.route.resource
        if route is not None:
            span.update_name(f"{request.method} {route.canonical}")
            span.set_attribute("http.route", route.canonical)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            tracing.failed(span, f"HTTP {response.status}")
        return response


def client_trace_config(app: web.Application) -> aiohttp.TraceConfig:
    """For the app's HTTP client: every call carries the correlation id and traceparent of
    the work it is made for (headers set explicitly win), in a client span when tracing."""

    async def on_start(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        headers = params.headers
        for name, value in context.propagation_headers().items():
            if name not in headers:
                headers[name] = value
        tracing = app.get(TRACING)
        if tracing is not None:
            span = tracing.start(
                f"{params.method} {params.url.host}:{params.url.port}",
                tracing.kinds.CLIENT,
                parent=headers.get("traceparent"),
                **{"http.request.method": params.method, "url.full": str(params.url)},
            )
            headers["traceparent"] = tracing.traceparent_of(span)
            ctx.span = span

    async def on_end(
        _: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if (span := getattr(ctx, "span", None)) is not None:
            span.set_attribute("http.response.status_code", params.response.status)
            span.end()

    async def on_error(
        _: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        if (span := getattr(ctx, "span", None)) is not None:
            span.record_exception(params.exception)
            app[TRACING].failed(span, type(params.exception).__name__)
            span.end()

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_error)
    return config

"""`make_app`: the one application factory every service builds on.

It gives each service the middlewares of the public API (request and correlation ids, metrics,
JSON errors, the 1 MiB body limit), `/health`, `/ready`, `/metrics` and `/demo/logs`, and
its Postgres pool and event store through `cleanup_ctx`. A service adds its routes and
background contexts, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from eventstore import ConcurrencyError, PostgresEventStore, create_pool
from eventstore.errors import KeyUnavailable

from . import context
from .appkeys import (
    CONFIG,
    HTTP,
    METRICS,
    POOL,
    READY_CHECKS,
    SERVICE,
    STORE,
    VAULT,
)
from .auth import VERIFIER, ForgottenUsers, KeySource, require_admin, verifier_context
from .client import UPSTREAMS, UpstreamError
from .config import Config
from .domain import DomainError
from .errors import (
    ApiError,
    Conflict,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
    api_error,
    upstream_error,
)
from .http import MAX_BODY, json_response
from .logs import log_shipping_context
from .metrics import Metrics, observe_appends, route_of
from .openapi import openapi_route, operations_of
from .personal import vault_for
from .tasks import cancel_and_wait
from .tracing import client_trace_config, tracing_context, tracing_middleware

__all__ = ["CleanupContext", "background", "make_app", "running_task"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("microshop.access")

# Probes and scrapes: not worth a log line each.
# probes, scrapes and the gateway's poll of revoked logins (every few seconds): no access lines
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics", "/internal/sessions/revoked"})

CleanupContext = Callable[[web.Application], AsyncIterator[None]]

# What Postgres says of text it cannot hold (a NUL character, in text or jsonb): the
# client's input, so a 422, never a 500.
_UNSTORABLE_TEXT = (
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# -- middlewares -------------------------------------------------------------------------


@web.middleware
async def context_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Adopt or mint the request and correlation ids (echoed on the response) and the W3C
    trace context."""
    rid = context.valid_id(request.headers.get("X-Request-ID")) or context.new_id()
    cid = context.valid_id(request.headers.get("X-Correlation-ID")) or rid
    trace = context.valid_traceparent(request.headers.get("traceparent"))
    rid_token, cid_token = context.request_id.set(rid), context.correlation_id.set(cid)
    trace_token = context.traceparent.set(trace or context.new_traceparent())
    try:
        response = await handler(request)
    finally:
        context.request_id.reset(rid_token)
        context.correlation_id.reset(cid_token)
        context.traceparent.reset(trace_token)
    response.headers["X-Request-ID"] = rid
    response.headers["X-Correlation-ID"] = cid
    return response


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time every request by route template, and log an access line for it."""
    start = time.perf_counter()
    status, answered = 500, False
    try:
        response = await handler(request)
        status, answered = response.status, True
        return response
    finally:
        seconds, route = time.perf_counter() - start, route_of(request)
        request.app[METRICS].observe_request(request.method, route, status, seconds)
        # a peer's call that succeeded is plumbing of a flow whose outcome is logged anyway
        # (by the caller and the domain): DEBUG; every public request and every refusal: INFO
        level = logging.DEBUG if status < 400 and route.startswith("/internal/") else logging.INFO
        quiet = request.path in _QUIET_PATHS or not access_log.isEnabledFor(level)
        if answered and not quiet:
            duration_ms = round(seconds * 1000, 2)
            access_log.log(
                level,
                "%s %s %d %.1fms",
                request.method,
                route,
                status,
                duration_ms,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as the JSON error shape; only our own bugs are 500s."""
    length = request.content_length
    if length is not None and length > MAX_BODY:
        return error_response(PayloadTooLarge())
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except DomainError as exc:
        return error_response(api_error(exc))
    except UpstreamError as exc:
        log.warning("%s %s: %s", request.method, request.path, exc.message)
        return error_response(upstream_error(exc))
    except ConcurrencyError as exc:
        return error_response(Conflict(str(exc), code="concurrency_conflict"))
    except KeyUnavailable as exc:  # the deployment's key-encryption key, not the caller
        log.error("%s %s: %s", request.method, request.path, exc)
        return error_response(
            ServiceUnavailable("personal data cannot be read now", code="personal_data_unavailable")
        )
    except _UNSTORABLE_TEXT as exc:  # a value no parser checked (they all should: read_json)
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(
            ValidationFailed("the request holds text that cannot be stored", code="unstorable_text")
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error_response(PayloadTooLarge())
        error = ApiError(exc.reason, code=_HTTP_CODES.get(exc.status, f"http_{exc.status}"))
        error.status = exc.status
        if exc.status == 405 and "Allow" in exc.headers:
            error.headers = {"Allow": exc.headers["Allow"]}
        return error_response(error)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError())


# -- built-in routes ---------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "service": request.app[SERVICE]})


async def ready(request: web.Request) -> web.Response:
    app = request.app
    problems: dict[str, str] = {}
    for check in app[READY_CHECKS]:
        try:
            async with asyncio.timeout(2):
                problem = await check(app)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            problems[getattr(check, "__name__", "check")] = problem
    if problems:
        return json_response(
            {"error": {"code": "not_ready", "message": "not ready", "details": problems}},
            status=503,
        )
    return json_response({"status": "ready", "service": app[SERVICE]})


async def metrics(request: web.Request) -> web.Response:
    body, headers = await request.app[METRICS].render(request.headers.getall("Accept", []))
    return web.Response(body=body, headers=headers)


DEMO_LOGS_ADMIN_ONLY = web.AppKey("demo_logs_admin_only", bool)
_DEMO_LEVELS = {"WARN": logging.WARNING, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
_LEVEL_NAMES = {logging.WARNING: "WARN", logging.ERROR: "ERROR"}


async def demo_logs(request: web.Request) -> web.Response:
    """Emit one demo log line at `?level=WARN|ERROR` (for trying out the central logs)."""
    if request.app[DEMO_LOGS_ADMIN_ONLY]:
        await require_admin(request)
    level_name = request.query.get("level", "WARN").upper()
    level = _DEMO_LEVELS.get(level_name)
    if level is None:
        raise ValidationFailed(details={"level": ["must be WARN or ERROR"]})
    service = request.app[SERVICE]
    message = f"demo {_LEVEL_NAMES[level]} log line from {service}"
    logging.getLogger(f"microshop.demo.{service}").log(level, message, extra={"demo": True})
    return json_response(
        {
            "logged": True,
            "level": _LEVEL_NAMES[level],
            "service": service,
            "message": message,
            "correlation_id": context.correlation_id.get(),
        },
        status=202,
    )


# -- resources ---------------------------------------------------------------------------


def application_name(config: Config, service: str) -> str:
    """How the service's connections show in `pg_stat_activity` (`microshop-order.1` for
    replica 1 of order-service; its session connection adds `-session`)."""
    return f"microshop-{service}" + (f".{config.replica}" if config.replica else "")


async def database_context(app: web.Application) -> AsyncIterator[None]:
    """The Postgres pool and the event store (connections open lazily: /ready tells)."""
    config = app[CONFIG]
    name = application_name(config, app[SERVICE])
    pool = await create_pool(
        config.database_url,
        application_name=name,
        min_size=0,
        max_size=config.db_pool_max_size,
        idle_in_transaction_timeout_ms=config.pool_idle_in_transaction_timeout_ms,
        statement_cache_size=config.db_statement_cache_size,
    )
    app[POOL] = pool
    app[VAULT] = vault = vault_for(config, pool)
    app[STORE] = PostgresEventStore(
        pool,
        dsn=config.session_database_url,
        application_name=name,
        pooler=config.behind_pooler,
        vault=vault,
    )
    observe_appends(app[METRICS], app[STORE])
    yield
    await app[STORE].close()
    await pool.close()


FORGOTTEN_REFRESH_SECONDS = 1.0


async def forgotten_users_context(app: web.Application) -> AsyncIterator[None]:
    """Tokens of forgotten accounts are refused here within a second of the forgetting,
    however long they would still live (the tokens' lifetime bounds the list)."""
    forgotten = ForgottenUsers(max_age=app[CONFIG].jwt_ttl_seconds + 300)
    app[VERIFIER].forgotten = forgotten
    pool = app[POOL]
    async with running_task(
        app, "forgotten-users", lambda: forgotten.follow(pool, FORGOTTEN_REFRESH_SECONDS)
    ):
        yield


async def http_client_context(app: web.Application) -> AsyncIterator[None]:
    """One HTTP client per app for calls to other services, with the upstream timeout."""
    config = app[CONFIG]
    timeout = aiohttp.ClientTimeout(total=config.upstream_timeout_seconds)
    connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=60)
    # client spans only when tracing: a trace config costs every call a dozen signals
    # (ServiceClient passes the correlation id and trace context on either way)
    traced = [client_trace_config(app)] if config.otel_exporter_otlp_endpoint else []
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, trace_configs=traced
    ) as session:
        app[HTTP] = session
        yield


def _count_upstream_trouble(app: web.Application) -> None:
    """`upstream_ejections_total` and `upstream_retries_total` per service called."""
    metrics = app[METRICS]
    ejections = metrics.counter(
        "upstream_ejections_total", "Times a replica of a service refused and was set aside."
    )
    retries = metrics.counter(
        "upstream_retries_total", "Calls sent again to another replica of the service."
    )

    async def collect() -> None:
        for name, upstream in app[UPSTREAMS].items():
            ejections.set({"upstream": name}, upstream.ejections)
            retries.set({"upstream": name}, upstream.retries)

    metrics.collectors.append(collect)


async def database_ready(app: web.Application) -> str | None:
    await app[POOL].fetchval("SELECT 1")
    return None


@contextlib.asynccontextmanager
async def running_task(
    app: web.Application, name: str, work: Callable[[], Coroutine[Any, Any, None]]
) -> AsyncIterator[asyncio.Task[None]]:
    """Run `work()` as a task for the duration of the block, then cancel it.

    If the task dies, the app stops being ready (and says why) instead of limping on.
    """
    task = asyncio.create_task(work(), name=name)

    async def alive(_: web.Application) -> str | None:
        if task.done() and not task.cancelled() and task.exception() is not None:
            return f"{name} stopped: {task.exception()!r}"
        return None

    alive.__name__ = name
    app[READY_CHECKS].append(alive)
    task.add_done_callback(_log_crash)
    try:
        yield task
    finally:
        await cancel_and_wait(task)


def background(
    name: str, work: Callable[[web.Application], Coroutine[Any, Any, None]]
) -> CleanupContext:
    """A cleanup context that runs `work(app)` as a task while the app runs."""

    async def context_(app: web.Application) -> AsyncIterator[None]:
        async with running_task(app, name, lambda: work(app)):
            yield

    return context_


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


def make_app(
    config: Config,
    service: str,
    *,
    routes: Iterable[web.AbstractRouteDef] = (),
    contexts: Iterable[CleanupContext] = (),
    database: bool = True,
    middlewares: Iterable[Any] = (),
    token_keys: KeySource | None = None,
    public: bool = False,
) -> web.Application:
    """The application of `service`: kernel middlewares and routes plus the given ones.

    Tokens are verified with auth-service's JWKS unless `token_keys` says otherwise. The
    `@documented` ones among `routes` make up the service's `GET /openapi.json`. `public`:
    this app faces the internet (the gateway), so its `/demo/logs` is for admins only.
    """
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            context_middleware,
            tracing_middleware,
            metrics_middleware,
            error_middleware,
            *middlewares,
        ],
    )
    app[CONFIG] = config
    app[SERVICE] = service
    app[METRICS] = Metrics(service)
    app[READY_CHECKS] = []
    app[UPSTREAMS] = {}
    _count_upstream_trouble(app)
    app[DEMO_LOGS_ADMIN_ONLY] = public
    app.cleanup_ctx.append(log_shipping_context)  # first in, last out: ships shutdown lines
    app.cleanup_ctx.append(tracing_context)
    app.cleanup_ctx.append(http_client_context)
    app.cleanup_ctx.append(verifier_context(token_keys))
    if database:
        app.cleanup_ctx.append(database_context)
        app.cleanup_ctx.append(forgotten_users_context)
        app[READY_CHECKS].append(database_ready)
    app.cleanup_ctx.extend(contexts)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/demo/logs", demo_logs)
    routes = list(routes)
    app.router.add_routes(routes)
    operations = operations_of(routes)
    if operations:
        app.router.add_routes([openapi_route(service, operations)])
    return app

"""order-service routes: the public order API and the internal payment-outcome API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from eventstore import Metadata, Position, Watched, Written
from microshop import context
from microshop.appkeys import CONFIG, POOL, STORE
from microshop.auth import Principal, authenticate, peer_causation, require_internal
from microshop.client import ServiceClient
from microshop.errors import ValidationFailed
from microshop.http import json_response, read_json, read_query
from microshop.openapi import documented, whole
from microshop.workers import RUNNERS, read_your_writes

from . import domain
from .carts import CartService
from .events import ORDER_STREAMS, PAYMENT_STREAMS
from .handlers import ORDER, change_order, place_order
from .metrics import ORDER_METRICS
from .openapi import OrderListSchema, OrderSchema, TimelineSchema
from .projections import ORDERS, order_json, row_from_log
from .schemas import OrderQuery, OrderQuerySchema, PaymentFailedSchema, PaymentSucceededSchema

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

_KEY = re.compile(whole(r"[\x21-\x7e]{1,200}"))  # printable ASCII, no spaces


def _metadata(principal: Principal | None, request: web.Request) -> Metadata:
    """Metadata of the events a request records: a client's own request has no causing
    event; a peer's call (internal key) may name one."""
    return context.event_metadata(
        "order",
        actor=principal.user_id if principal else "internal",
        causation_id=peer_causation(request),
    )


def _order_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["id"]))
    except ValueError:
        raise domain.OrderNotFound() from None


async def _row(request: web.Request, order_id: str) -> Any:
    return await request.app[POOL].fetchrow(
        "SELECT * FROM orders WHERE id = $1", uuid.UUID(order_id)
    )


def _visible(row: Any, principal: Principal, *, owner_only: bool) -> Any:
    """`row` if the caller may see it; no row, or another user's, is a 404, not a 403."""
    if row is None:
        raise domain.OrderNotFound()
    if row["user_id"] != principal.user_id and (owner_only or not principal.is_admin):
        raise domain.OrderNotFound()
    return row


async def _visible_row(request: web.Request, principal: Principal, *, owner_only: bool) -> Any:
    """The order's row if the caller may see it."""
    row = await _row(request, _order_id(request))
    return _visible(row, principal, owner_only=owner_only)


async def _row_as_of(request: web.Request, principal: Principal, as_of: datetime) -> Any:
    """The order's row as it was at `as_of`, folded from its stream (time travel), if the
    caller may see it; an order that did not exist yet is a 404."""
    row = await row_from_log(request.app[STORE], _order_id(request), as_of=as_of)
    return _visible(row, principal, owner_only=False)


async def _settled(
    request: web.Request,
    order_id: str,
    position: Position | None,
    written: asyncio.Future[Watched] | None = None,
    version: int = 0,
) -> Any:
    """The order's row after a write at `position` (read-your-writes). When the read model
    does not get there in time, the row as the log has it: the write is committed, so it
    is answered, never failed. `written`: a watch of the row registered once the write
    returned; the row it brings is the answer when it is at `version` or later."""
    try:
        if await read_your_writes(request.app, ORDERS.name, position):
            if written is not None and written.done():
                seen = written.result()
                if isinstance(seen, Written) and seen.row and seen.row["version"] >= version:
                    return seen.row  # the runner's own write: no read
            row = await _row(request, order_id)
            if row is not None:
                return row
        return await row_from_log(request.app[STORE], order_id)
    finally:
        if written is not None:
            written.cancel()


@routes.post("/api/orders")
@documented(
    status=201,
    response=OrderSchema,
    errors=(401, 409, 422),
    headers={
        "Idempotency-Key": {
            "description": "the same key from the same user gives the same order",
            "schema": {"type": "string", "pattern": _KEY.pattern},
        }
    },
    rules="cart_empty: the cart has no lines (409 product_unavailable: it holds products no"
    " longer sold; 409 cart_already_ordered: this state of the cart was ordered already)",
)
async def create_order(request: web.Request) -> web.Response:
    """Place an order from the cart (Idempotency-Key honoured)."""
    principal = await authenticate(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise ValidationFailed(details={"Idempotency-Key": ["1 to 200 printable characters"]})
    carts = CartService(ServiceClient.of(request.app, "cart"), request.headers["Authorization"])
    app = request.app
    placed = await place_order(
        app[STORE], app[POOL], carts, principal.user_id, key, _metadata(principal, request)
    )
    # the runner writes the row after this, most likely: it brings it (version 1 or later)
    written = app[RUNNERS][ORDERS.name].watch(uuid.UUID(placed.order_id))
    row = await _settled(request, placed.order_id, placed.position, written, version=1)
    headers = {"Location": f"/api/orders/{placed.order_id}"}
    if placed.replayed:
        headers["Idempotency-Replayed"] = "true"
    else:
        request.app[ORDER_METRICS].placed.inc({})
        log.info(
            "order %s placed: %s %s",
            placed.order_id,
            row["total"],
            row["currency"],
            extra={"order_id": placed.order_id},
        )
    return json_response(order_json(row), status=201, headers=headers)


@routes.get("/api/orders")
@documented(response=OrderListSchema, errors=(401,))
async def list_orders(request: web.Request) -> web.Response:
    """The caller's orders, newest first."""
    principal = await authenticate(request)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 500",
        principal.user_id,
    )
    return json_response({"items": [order_json(r) for r in rows]})


@routes.get("/api/orders/{id}")
@documented(
    response=OrderSchema,
    errors=(401, 404, 422),
    query=OrderQuerySchema,
    rules="as_of cannot be combined with wait > 0 (the past does not change)",
)
async def get_order(request: web.Request) -> web.Response:
    """One order (optionally long-polled, or as it was at a time).

    The order; with `?wait=S`, answered once its status is no longer `while_status`
    (default PENDING_PAYMENT) or after S seconds, whichever comes first. With
    `?as_of=T`, the order as it was at time T, folded from its events."""
    principal = await authenticate(request)
    query = read_query(request, OrderQuerySchema(), OrderQuery)
    if query.as_of is not None:
        return json_response(order_json(await _row_as_of(request, principal, query.as_of)))
    if query.wait <= 0:
        return json_response(order_json(await _visible_row(request, principal, owner_only=False)))
    runner = request.app[RUNNERS][ORDERS.name]
    changed = runner.watch(uuid.UUID(_order_id(request)))  # before reading: no change missed
    try:
        row = await _visible_row(request, principal, owner_only=False)
        timeout = min(query.wait, request.app[CONFIG].upstream_timeout_seconds * 0.8)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while row["status"] == query.while_status:
                    written = await changed
                    changed = runner.watch(row["id"])
                    if isinstance(written, Written) and written.row is not None:
                        row = written.row  # what the runner just wrote: no read
                    else:
                        row = await _row(request, str(row["id"]))
    finally:
        changed.cancel()
    return json_response(order_json(row))


@routes.get("/api/orders/{id}/events")
@documented(response=TimelineSchema, errors=(401, 404))
async def order_events(request: web.Request) -> web.Response:
    """The order's event timeline.

    The order's timeline: its own events and its payment's, in the order they happened."""
    principal = await authenticate(request)
    row = await _visible_row(request, principal, owner_only=False)
    store, order_id = request.app[STORE], str(row["id"])
    recorded = [
        *await store.read_stream(ORDER_STREAMS.stream(order_id)),
        *await store.read_stream(PAYMENT_STREAMS.stream(order_id)),
    ]
    recorded.sort(key=lambda e: (e.recorded_at, e.global_position))
    return json_response(
        {
            "items": [
                {
                    "type": e.event_type,
                    "stream": e.stream_id,
                    "stream_version": e.stream_version,
                    "recorded_at": e.recorded_at,
                    "data": msgspec.to_builtins(e.data),
                    "correlation_id": e.metadata.correlation_id,
                }
                for e in recorded
            ]
        }
    )


async def _transition(request: web.Request, decide: Any, status: int) -> web.Response:
    principal = await authenticate(request)
    row = await _visible_row(request, principal, owner_only=True)
    order_id = str(row["id"])
    changed = await change_order(
        request.app[STORE], order_id, decide, _metadata(principal, request)
    )
    position = changed.position
    row = await _settled(request, order_id, position)
    if position is not None and row["status"] in domain.FINAL:
        request.app[ORDER_METRICS].settled(row["status"], row["created_at"])
    return json_response(order_json(row), status=status)


@routes.post("/api/orders/{id}/retry-payment")
@documented(status=202, response=OrderSchema, errors=(401, 404, 409))
async def retry_payment(request: web.Request) -> web.Response:
    """Retry a failed payment."""
    return await _transition(request, domain.request_retry, 202)


@routes.post("/api/orders/{id}/cancel")
@documented(response=OrderSchema, errors=(401, 404, 409))
async def cancel_order(request: web.Request) -> web.Response:
    """Cancel an order that is not final."""
    return await _transition(request, domain.cancel, 200)


# -- internal -----------------------------------------------------------------------------


@routes.get("/internal/orders/{id}")
async def internal_order(request: web.Request) -> web.Response:
    """The order as its stream says right now (not the read model, which may lag the relay:
    order-consumer asks as soon as it sees OrderPlaced)."""
    require_internal(request)
    order_id = _order_id(request)
    loaded = await ORDER.load(request.app[STORE], order_id)
    order, version = loaded.state, loaded.version
    if order is None:
        raise domain.OrderNotFound()
    return json_response(
        {
            "id": order.id,
            "user_id": order.user_id,
            "status": order.status,
            "total": f"{order.total:.2f}",
            "currency": order.currency,
            "payment_round": order.round,
            "payment_attempts": order.attempts,
            "payment_id": order.payment_id,
            "version": version,
        }
    )


async def _outcome(request: web.Request, decide: Any) -> web.Response:
    """A payment's outcome recorded on the order, answered once the read model has it
    (read-your-writes); the answer and the metrics come from the fold, not the row."""
    order_id = _order_id(request)
    changed = await change_order(request.app[STORE], order_id, decide, _metadata(None, request))
    order, position = changed.state, changed.position
    assert order is not None  # change_order refuses a missing order
    if position is not None:
        await read_your_writes(request.app, ORDERS.name, position)
        placed_at = changed.before.recorded[0].recorded_at  # OrderPlaced: the stream's first
        request.app[ORDER_METRICS].settled(order.status, placed_at)
        log.info("order %s is %s", order_id, order.status, extra={"order_id": order_id})
    return json_response(
        {"order_id": order_id, "status": order.status, "recorded": position is not None}
    )


@routes.post("/internal/orders/{id}/payment-succeeded")
async def payment_succeeded(request: web.Request) -> web.Response:
    require_internal(request)
    body = await read_json(request, PaymentSucceededSchema())
    return await _outcome(
        request,
        lambda order: domain.payment_succeeded(
            order, body["round"], body["attempt"], str(body["payment_id"])
        ),
    )


@routes.post("/internal/orders/{id}/payment-failed")
async def payment_failed(request: web.Request) -> web.Response:
    require_internal(request)
    body = await read_json(request, PaymentFailedSchema())
    return await _outcome(
        request,
        lambda order: domain.payment_failed(order, body["round"], body["attempts"], body["reason"]),
    )


@routes.get("/internal/debug/routes")
async def debug_routes(request: web.Request) -> web.Response:
    """Every route this service answers, to troubleshoot routing (internal key)."""
    require_internal(request)
    found = []
    for route in request.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        handler = getattr(route.handler, "__name__", repr(route.handler))
        found.append({"method": route.method, "path": path, "handler": handler})
    return json_response({"service": "order", "routes": found})

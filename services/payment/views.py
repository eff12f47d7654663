"""HTTP routes of payment-service: internal only (the `X-Internal-Api-Key` header).

- `POST /internal/payments`: charge one attempt of an order, idempotently;
- `GET /internal/payments/{order_id}`: the order's attempts and its charge;
- `GET`/`PUT /internal/settings`: the simulation's knobs (of every replica).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from eventstore import Metadata
from microshop import context
from microshop.appkeys import STORE
from microshop.auth import peer_causation, require_internal
from microshop.errors import NotFound
from microshop.http import json_response, read_json, uuid_in_path

from . import handlers, queries
from .appkeys import ORDER_SERVICE, PAYMENT_METRICS, SIMULATOR
from .domain import PaymentResult, PaymentStatus
from .orders import Report
from .schemas import PaymentRequestSchema, SettingsSchema
from .simulator import SETTINGS_CHANNEL, Settings

__all__ = ["routes"]

log = logging.getLogger(__name__)

SERVICE = "payment"

routes = web.RouteTableDef()


def metadata_for(request: web.Request) -> Metadata:
    """Who recorded the events: this service, in the caller's correlation, caused by the
    event the caller names in `X-Causation-ID` (e.g. the OrderPlaced it is acting on)."""
    return context.event_metadata(SERVICE, actor=SERVICE, causation_id=peer_causation(request))


def present_result(result: PaymentResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "order_id": str(result.order_id),
        "round": result.round,
        "attempt": result.attempt,
        "payment_id": None if result.payment_id is None else str(result.payment_id),
        "reason": result.reason,
    }


def present_settings(settings: Settings) -> dict[str, Any]:
    return {"success_rate": settings.success_rate, "latency_ms": settings.latency_ms}


def order_id_of(request: web.Request) -> uuid.UUID:
    """The `{order_id}` of the path; anything that is not a UUID names no order (404)."""
    return uuid_in_path(request, "order_id", "payments for order")


@routes.post("/internal/payments")
async def create_payment(request: web.Request) -> web.Response:
    """200 with `charged`, `declined` or `already_charged`; the same request again gets
    the same answer. A `charged` answer (new or replayed) is reported to order-service
    before answering, unless the charge was refunded already."""
    require_internal(request)
    payment_request = await read_json(request, PaymentRequestSchema())
    app = request.app
    metadata = metadata_for(request)
    paid = await handlers.pay(app[STORE], app[SIMULATOR], payment_request, metadata=metadata)
    result = paid.result
    app[PAYMENT_METRICS].payments.inc({"outcome": result.status.value})
    log.info(
        "payment of order %s round %d attempt %d: %s%s",
        result.order_id,
        result.round,
        result.attempt,
        result.status.value,
        "" if paid.recorded else " (answered from the record)",
    )
    reported = False
    if result.status is PaymentStatus.CHARGED and not paid.refunded:
        report, refunded = await handlers.report_charge(
            app[STORE], app[ORDER_SERVICE], paid, metadata=metadata
        )
        reported = report is Report.ACCEPTED
        if refunded:
            app[PAYMENT_METRICS].refunds.inc({})
    # `reported`: order-service has the charge already; the caller need not report it again
    return json_response({**present_result(result), "reported": reported})


@routes.get("/internal/payments/{order_id}")
async def get_payments(request: web.Request) -> web.Response:
    """The order's attempts in recording order; 404 when it has none."""
    require_internal(request)
    order_id = order_id_of(request)
    history = await queries.payment_history(request.app[STORE], order_id)
    if history is None:
        raise NotFound(f"no payments for order {order_id}")
    payment = history.payment
    charge = payment.charge
    attempts = [
        {
            "round": a.round,
            "attempt": a.attempt,
            "status": None if a.status is None else a.status.value,
            "payment_id": None if a.payment_id is None else str(a.payment_id),
            "reason": a.reason,
            "recorded_at": history.recorded_at.get((a.round, a.attempt)),
        }
        for a in payment.attempts
    ]
    return json_response(
        {
            "order_id": str(order_id),
            "charged": charge is not None,
            "payment_id": None if charge is None else str(charge.payment_id),
            "attempts": attempts,
        }
    )


@routes.get("/internal/settings")
async def get_settings(request: web.Request) -> web.Response:
    """The simulation settings (every replica's, once changed)."""
    require_internal(request)
    return json_response(present_settings(request.app[SIMULATOR].settings))


@routes.put("/internal/settings")
async def put_settings(request: web.Request) -> web.Response:
    """Change any of the settings of every replica, effective for the next roll."""
    require_internal(request)
    changes = await read_json(request, SettingsSchema())
    settings = request.app[SIMULATOR].change(**changes)
    session = request.app[STORE].session
    if session is not None:
        await session.notify(SETTINGS_CHANNEL, settings.to_json())
    log.info(
        "payment simulation settings are now success_rate=%s latency_ms=%d",
        settings.success_rate,
        settings.latency_ms,
    )
    return json_response(present_settings(settings))

"""order-service's part of the public API document (the gateway joins every service's)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import Operation, Query

from .domain import CANCELLED, PAID, PAYMENT_FAILED, PENDING_PAYMENT

__all__ = ["OPERATIONS"]


class OrderLineSchema(Schema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(as_string=True, required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Decimal(as_string=True, required=True)


class OrderSchema(Schema):
    id = fields.UUID(required=True)
    status = fields.String(
        required=True, metadata={"enum": [PENDING_PAYMENT, PAID, PAYMENT_FAILED, CANCELLED]}
    )
    items = fields.List(fields.Nested(OrderLineSchema), required=True)
    total = fields.Decimal(as_string=True, required=True)
    currency = fields.String(required=True)
    payment_attempts = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)


class TimelineEntrySchema(Schema):
    type = fields.String(required=True)
    stream = fields.String(required=True)
    stream_version = fields.Integer(required=True)
    recorded_at = fields.DateTime(required=True)
    data = fields.Dict(required=True)
    correlation_id = fields.String(allow_none=True)


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(TimelineEntrySchema), required=True)


_LONG_POLL = (
    Query("wait", "number", "long polling: up to this many seconds (max 25) for a change"),
    Query(
        "while_status",
        "string",
        "answer once the status is no longer this one (default PENDING_PAYMENT)",
    ),
)

OPERATIONS = (
    Operation(
        "GET",
        "/api/orders",
        "The caller's orders, newest first",
        response=OrderListSchema,
        errors=(401,),
    ),
    Operation(
        "POST",
        "/api/orders",
        "Place an order from the cart (Idempotency-Key honoured)",
        status=201,
        response=OrderSchema,
        errors=(401, 409, 422),
    ),
    Operation(
        "GET",
        "/api/orders/{id}",
        "One order (optionally long-polled)",
        response=OrderSchema,
        errors=(401, 404, 422),
        query=_LONG_POLL,
    ),
    Operation(
        "GET",
        "/api/orders/{id}/events",
        "The order's event timeline",
        response=TimelineSchema,
        errors=(401, 404),
    ),
    Operation(
        "POST",
        "/api/orders/{id}/retry-payment",
        "Retry a failed payment",
        status=202,
        response=OrderSchema,
        errors=(401, 404, 409),
    ),
    Operation(
        "POST",
        "/api/orders/{id}/cancel",
        "Cancel an order that is not final",
        response=OrderSchema,
        errors=(401, 404, 409),
    ),
)

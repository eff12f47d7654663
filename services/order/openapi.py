"""order-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import CURRENCY_PATTERN, Money, PricedLineSchema

from .domain import CANCELLED, PAID, PAYMENT_FAILED, PENDING_PAYMENT

__all__ = [
    "OrderListSchema",
    "OrderSchema",
    "TimelineEntrySchema",
    "TimelineSchema",
]


class OrderSchema(Schema):
    id = fields.UUID(required=True)
    status = fields.String(
        required=True, metadata={"enum": [PENDING_PAYMENT, PAID, PAYMENT_FAILED, CANCELLED]}
    )
    items = fields.List(fields.Nested(PricedLineSchema), required=True)
    total = Money(required=True)
    currency = fields.String(required=True, metadata={"pattern": CURRENCY_PATTERN})
    payment_attempts = fields.Integer(required=True, metadata={"minimum": 0})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)


class TimelineEntrySchema(Schema):
    """One event of the order (`order-{id}`) or of its payment (`payment-{id}`)."""

    type = fields.String(required=True, metadata={"example": "OrderPlaced"})
    stream = fields.String(required=True, metadata={"example": "order-{id}"})
    stream_version = fields.Integer(required=True, metadata={"minimum": 1})
    recorded_at = fields.DateTime(required=True)
    data = fields.Dict(required=True, metadata={"description": "the event as recorded"})
    correlation_id = fields.String(required=True, allow_none=True)


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(TimelineEntrySchema), required=True)

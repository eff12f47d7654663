"""order-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import PricedLineSchema

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

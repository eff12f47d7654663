"""Bodies of order-service's internal API (payment outcomes) and its query strings."""

from __future__ import annotations

import dataclasses
from typing import Any

import marshmallow
from marshmallow import Schema, fields, validate

from .domain import CANCELLED, PAID, PAYMENT_FAILED, PENDING_PAYMENT

MAX_WAIT = 25.0  # seconds a GET may hold on for a change (below the gateway's timeout)


@dataclasses.dataclass(frozen=True, slots=True)
class OrderWait:
    """`GET /api/orders/{id}?wait=S&while_status=X`: hold the answer up to S seconds while
    the order's status is X (default PENDING_PAYMENT): long polling instead of hammering."""

    wait: float
    while_status: str


class OrderWaitSchema(Schema):
    class Meta:
        unknown = marshmallow.EXCLUDE

    wait = fields.Float(
        load_default=0.0,
        validate=validate.Range(0.0, MAX_WAIT),
        metadata={"description": "long polling: up to this many seconds for a change"},
    )
    while_status = fields.String(
        load_default=PENDING_PAYMENT,
        validate=validate.OneOf((PENDING_PAYMENT, PAYMENT_FAILED, PAID, CANCELLED)),
        metadata={"description": "answer once the status is no longer this one"},
    )

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> OrderWait:
        return OrderWait(**data)


class PaymentSucceededSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempt = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    payment_id = fields.UUID(required=True)


class PaymentFailedSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempts = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    reason = fields.String(load_default="payment declined", validate=validate.Length(max=500))

"""Bodies of order-service's internal API (payment outcomes) and its query strings."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import marshmallow
from marshmallow import Schema, fields, validate

from .domain import CANCELLED, PAID, PAYMENT_FAILED, PENDING_PAYMENT

MAX_WAIT = 25.0  # seconds a GET may hold on for a change (below the gateway's timeout)


@dataclasses.dataclass(frozen=True, slots=True)
class OrderQuery:
    """`GET /api/orders/{id}?wait=S&while_status=X`: hold the answer up to S seconds while
    the order's status is X (default PENDING_PAYMENT): long polling instead of hammering.
    `?as_of=T`: the order as it was at time T instead (time travel; never long-polled)."""

    wait: float
    while_status: str
    as_of: datetime | None = None


_AS_OF = (
    "time travel: the order as it was at this time (ISO 8601 with a timezone, `Z` or an "
    "offset such as `+02:00`, which must be sent as `%2B02:00` in a URL; microseconds "
    "count). The answer is folded from the order's events recorded at or before it; an "
    "event's own `recorded_at` (from the timeline) includes that event. A time without a "
    "timezone is refused (422) rather than guessed. 404 when the order did not exist yet. "
    "Not combinable with `wait`: the past does not change (422)."
)
_NOT_AWARE = "an ISO 8601 time with a timezone (Z or an offset such as +02:00) is required"


class OrderQuerySchema(Schema):
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
    as_of = fields.AwareDateTime(
        format="iso",
        error_messages={"invalid": _NOT_AWARE, "invalid_awareness": _NOT_AWARE},
        metadata={"description": _AS_OF},
    )

    @marshmallow.validates_schema
    def as_of_is_not_waited_for(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("as_of") is not None and data.get("wait", 0.0) > 0:
            raise marshmallow.ValidationError(
                "cannot be combined with wait: the past does not change", "as_of"
            )

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> OrderQuery:
        return OrderQuery(**data)


class PaymentSucceededSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempt = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    payment_id = fields.UUID(required=True)


class PaymentFailedSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempts = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    reason = fields.String(load_default="payment declined", validate=validate.Length(max=500))

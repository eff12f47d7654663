"""HTTP bodies, loaded into the domain's request type and the simulator's settings.

Amounts are accepted only as decimal strings (a JSON number is refused, so no caller learns
to send floats for money); rounds, attempts and latencies only as JSON integers; the
success rate only as a JSON number. Booleans are never numbers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import marshmallow
from marshmallow import fields, validate

from microshop import fields as kernel_fields

from .domain import PaymentRequest, rules
from .simulator import MAX_LATENCY_MS

__all__ = ["PaymentRequestSchema", "SettingsSchema"]


Checked = kernel_fields.Checked


class Amount(Checked[Decimal]):
    default_error_messages = {"invalid": 'Must be a decimal string such as "12.34".'}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(rules.parse_amount, **kwargs)


class Rate(fields.Field[float]):
    """A JSON number from 0 to 1 (`0`, `1`, `0.25`); strings, booleans and NaN are refused."""

    default_error_messages = {"invalid": "Must be a number from 0.0 to 1.0."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> float:
        # read_json parses JSON numbers with a fraction as Decimal, others as int
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise self.make_error("invalid")
        if isinstance(value, Decimal) and not value.is_finite():
            raise self.make_error("invalid")
        if not 0 <= value <= 1:  # NaN fails this too
            raise self.make_error("invalid")
        return float(value)


def _count(**kwargs: Any) -> fields.Integer:
    """A round or attempt number: a JSON integer from 1 (booleans are refused)."""
    return fields.Integer(strict=True, validate=validate.Range(1, rules.MAX_NUMBER), **kwargs)


class PaymentRequestSchema(marshmallow.Schema):
    """`POST /internal/payments`: `{order_id, round, attempt, amount, currency}`."""

    order_id = fields.UUID(required=True)
    round = _count(required=True)
    attempt = _count(required=True)
    amount = Amount(required=True)
    currency = Checked(rules.valid_currency, required=True)

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> PaymentRequest:
        return PaymentRequest(**data)


class SettingsSchema(marshmallow.Schema):
    """`PUT /internal/settings`: any of `success_rate` (0.0..1.0), `latency_ms` (integer
    0..60000). Loads into the keyword arguments of `PaymentSimulator.change`."""

    success_rate = Rate()
    latency_ms = fields.Integer(strict=True, validate=validate.Range(0, MAX_LATENCY_MS))

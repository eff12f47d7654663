"""Bodies of order-service's internal API (payment outcomes)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class PaymentSucceededSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempt = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    payment_id = fields.UUID(required=True)


class PaymentFailedSchema(Schema):
    round = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10_000))
    attempts = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    reason = fields.String(load_default="payment declined", validate=validate.Length(max=500))

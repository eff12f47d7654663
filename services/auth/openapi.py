"""auth-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

__all__ = [
    "AccountSchema",
    "ExportSchema",
    "ForgottenSchema",
    "JwksSchema",
    "MeSchema",
    "TokenSchema",
]


class AccountSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)


class MeSchema(AccountSchema):
    roles = fields.List(fields.String(metadata={"enum": ["user", "admin"]}), required=True)


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = fields.Integer(
        required=True,
        metadata={
            "minimum": 1,
            "maximum": 900,
            "description": "seconds the access token lives (at most 900)",
        },
    )
    refresh_token = fields.String(
        required=True,
        metadata={"description": "one use: `POST /api/auth/refresh` trades it for a new pair"},
    )
    refresh_expires_in = fields.Integer(
        required=True,
        metadata={"minimum": 1, "description": "seconds the refresh token stays usable"},
    )


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)


class _ExportedAccountSchema(MeSchema):
    created_at = fields.DateTime(required=True)


class _ExportedEventSchema(Schema):
    type = fields.String(required=True)
    stream = fields.String(required=True)
    stream_version = fields.Integer(required=True)
    recorded_at = fields.DateTime(required=True)
    data = fields.Dict(
        required=True, metadata={"description": "personal fields decrypted, or [redacted]"}
    )


class ExportSchema(Schema):
    exported_at = fields.DateTime(required=True)
    account = fields.Nested(_ExportedAccountSchema, required=True)
    events = fields.List(fields.Nested(_ExportedEventSchema), required=True)
    cart = fields.Dict(required=True, metadata={"description": "as GET /api/cart answers"})
    orders = fields.List(
        fields.Dict(), required=True, metadata={"description": "as GET /api/orders lists them"}
    )


class ForgottenSchema(Schema):
    user_id = fields.UUID(required=True)
    forgotten_at = fields.DateTime(required=True)
    key_destroyed = fields.Boolean(
        required=True,
        metadata={"description": "false when the account had no personal data sealed"},
    )

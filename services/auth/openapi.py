"""auth-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

__all__ = ["AccountSchema", "JwksSchema", "TokenSchema"]


class AccountSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)
    roles = fields.List(fields.String())


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(
        required=True, metadata={"description": "seconds the access token lives (at most 900)"}
    )
    refresh_token = fields.String(
        required=True,
        metadata={"description": "one use: `POST /api/auth/refresh` trades it for a new pair"},
    )
    refresh_expires_in = fields.Integer(
        required=True, metadata={"description": "seconds the refresh token stays usable"}
    )


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)

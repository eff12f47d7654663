"""auth-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

__all__ = ["AccountSchema", "JwksSchema", "MeSchema", "TokenSchema"]


class AccountSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)


class MeSchema(AccountSchema):
    roles = fields.List(fields.String(metadata={"enum": ["user", "admin"]}), required=True)


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"enum": ["Bearer"]})
    expires_in = fields.Integer(required=True, metadata={"minimum": 1})


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)

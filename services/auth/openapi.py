"""auth-service's part of the public API document (the gateway joins every service's)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import Operation

from .schemas import LoginSchema, RegisterSchema

__all__ = ["OPERATIONS"]


class AccountSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)
    roles = fields.List(fields.String())


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True)


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)


OPERATIONS = (
    Operation(
        "POST",
        "/api/auth/register",
        "Create an account",
        request=RegisterSchema,
        status=201,
        response=AccountSchema,
        errors=(400, 409, 422),
    ),
    Operation(
        "POST",
        "/api/auth/login",
        "Get an access token",
        request=LoginSchema,
        response=TokenSchema,
        errors=(400, 401, 422, 429),
    ),
    Operation("GET", "/api/auth/me", "The caller's account", response=AccountSchema, errors=(401,)),
    Operation(
        "GET",
        "/.well-known/jwks.json",
        "Public keys that verify access tokens",
        response=JwksSchema,
    ),
)

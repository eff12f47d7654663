"""Request bodies of auth-service."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .domain import MAX_PASSWORD, MIN_PASSWORD


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(
        required=True,
        validate=validate.Length(
            min=MIN_PASSWORD,
            max=MAX_PASSWORD,
            error=f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        ),
    )


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=MAX_PASSWORD))


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=256))

"""log-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import Schema, fields

__all__ = ["LogLineSchema", "LogListSchema"]


class LogLineSchema(Schema):
    ts = fields.DateTime()
    service = fields.String()
    level = fields.String()
    message = fields.String()
    correlation_id = fields.String(allow_none=True)


class LogListSchema(Schema):
    items = fields.List(fields.Nested(LogLineSchema), required=True)

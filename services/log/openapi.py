"""log-service's answers as the API document describes them (the routes say which)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields

from .schemas import LEVEL_NAMES

__all__ = ["LogLineSchema", "LogListSchema"]


class LogLineSchema(Schema):
    """A stored line: these fields, plus whatever structured fields its writer added
    (`order_id`, `route`, `status`, `duration_ms`, ...)."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: true

    id = fields.Integer(required=True, metadata={"description": "the line's place in the store"})
    ts = fields.DateTime(required=True)
    service = fields.String(required=True)
    level = fields.String(required=True, metadata={"enum": list(LEVEL_NAMES)})
    logger = fields.String()
    message = fields.String(required=True)
    correlation_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    exception = fields.String(metadata={"description": "the traceback, when one was logged"})


class LogListSchema(Schema):
    items = fields.List(fields.Nested(LogLineSchema), required=True)

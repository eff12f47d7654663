"""log-service's part of the public API document (the gateway joins every service's)."""

from __future__ import annotations

from marshmallow import Schema, fields

from microshop.openapi import Operation, Query

__all__ = ["OPERATIONS"]


class LogLineSchema(Schema):
    ts = fields.DateTime()
    service = fields.String()
    level = fields.String()
    message = fields.String()
    correlation_id = fields.String(allow_none=True)


class LogListSchema(Schema):
    items = fields.List(fields.Nested(LogLineSchema), required=True)


OPERATIONS = (
    Operation(
        "GET",
        "/api/logs",
        "Search the central logs",
        response=LogListSchema,
        errors=(401, 403, 422),
        query=(
            Query("service", "string", "e.g. order-consumer"),
            Query("level", "string", "DEBUG, INFO, WARN, ERROR or FATAL"),
            Query("correlation_id", "string"),
            Query("request_id", "string"),
            Query("since", "string", "ISO 8601 time"),
            Query("until", "string", "ISO 8601 time"),
            Query("q", "string", "words in the message"),
            Query("limit", "integer", "1..1000, default 100; newest first"),
        ),
    ),
)

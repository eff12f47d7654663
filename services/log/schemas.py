"""The query string of GET /api/logs, loaded into a `LogQuery`."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import marshmallow
from marshmallow import fields, validate

from microshop import context
from microshop.openapi import whole

from .lines import normalize_level
from .store import LogQuery

__all__ = ["LEVEL_NAMES", "LogQuerySchema"]

LEVEL_NAMES = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
MAX_LIMIT = 1000
_SERVICE = re.compile(whole(r"[a-z][a-z0-9_-]{0,63}"))


def _caseless(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


# what `normalize_level` makes a level of: any case, surrounding whitespace trimmed
_LEVEL_PATTERN = whole(
    r"\s*(?:" + "|".join(map(_caseless, (*LEVEL_NAMES, "WARNING", "CRITICAL"))) + r")\s*"
)
_ID_PATTERN = whole(r"[A-Za-z0-9._:-]{1,128}")  # `context.valid_id`


class _Id(fields.String):
    """A request or correlation id: the characters the services accept and echo."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if context.valid_id(text) is None:
            raise marshmallow.ValidationError("Not a valid id (letters, digits, . _ : -).")
        return text


class _Level(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        level = normalize_level(super()._deserialize(value, attr, data, **kwargs))
        if level not in LEVEL_NAMES:
            raise marshmallow.ValidationError(f"Must be one of {', '.join(LEVEL_NAMES)}.")
        return level


class LogQuerySchema(marshmallow.Schema):
    """`?service=&level=&correlation_id=&request_id=&since=&until=&q=&limit=`."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    service = fields.String(
        load_default=None,
        validate=validate.Regexp(_SERVICE, error="Not a service name (e.g. order-consumer)."),
        metadata={"description": "the service that wrote the line, e.g. order-consumer"},
    )
    level = _Level(
        load_default=None,
        metadata={
            "description": ", ".join(LEVEL_NAMES) + " in any case (WARNING = WARN)",
            "pattern": _LEVEL_PATTERN,
        },
    )
    correlation_id = _Id(
        load_default=None,
        metadata={"description": "one correlation's lines", "pattern": _ID_PATTERN},
    )
    request_id = _Id(
        load_default=None, metadata={"description": "one request's lines", "pattern": _ID_PATTERN}
    )
    since = fields.AwareDateTime(
        load_default=None,
        default_timezone=dt.UTC,
        metadata={"description": "ISO 8601 time (without an offset: UTC)"},
    )
    until = fields.AwareDateTime(
        load_default=None,
        default_timezone=dt.UTC,
        metadata={"description": "ISO 8601 time (without an offset: UTC), after since"},
    )
    q = fields.String(
        load_default=None,
        validate=validate.Length(1, 200),
        metadata={"description": "words in the message"},
    )
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": "how many lines, newest first"},
    )

    @marshmallow.validates_schema
    def window(self, data: dict[str, Any], **kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since >= until:
            raise marshmallow.ValidationError("must be after since", "until")

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> LogQuery:
        return LogQuery(**data)

"""JSON in and out: strict body parsing with marshmallow schemas, fast encoding."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any, TypeVar

import marshmallow
import msgspec
from aiohttp import web

from .errors import BadRequest, NotFound, ValidationFailed

__all__ = [
    "MAX_BODY",
    "UNSTORABLE",
    "json_response",
    "read_json",
    "read_query",
    "storable",
    "uuid_in_path",
]

T = TypeVar("T")

MAX_BODY = 1024 * 1024

_encode = msgspec.json.Encoder(decimal_format="string").encode


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response; decimals become strings, datetimes ISO 8601, UUIDs text."""
    return web.Response(
        body=_encode(data), status=status, headers=headers, content_type="application/json"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


UNSTORABLE = "must not contain NUL characters or unpaired surrogates"
"""Why a string is refused: Postgres `text` and `jsonb` cannot hold a NUL character, and an
unpaired UTF-16 surrogate (JSON `"\\ud800"`) is no character at all."""


def storable(text: str) -> bool:
    """Whether Postgres text can hold `text` as it is."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(data: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) of JSON `data` that Postgres cannot
    store (`_schema` for the top level), else None."""
    if isinstance(data, str):
        return None if storable(data) else path or "_schema"
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if not storable(key):
                return path or "_schema"
            found = _unstorable(value, where)
            if found is not None:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = _unstorable(value, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


async def read_json(request: web.Request, schema: marshmallow.Schema | None = None) -> Any:
    """The request's JSON body, loaded by `schema` when given.

    400 for a missing or malformed body, 413 over the size limit, 422 with per-field
    details when the schema refuses it or a string holds what Postgres cannot store (a
    NUL, an unpaired surrogate): refused here once for every endpoint, never a 500 later.
    """
    body = await request.read()
    if not body.strip():
        raise BadRequest("a JSON body is required")
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    where = _unstorable(data)
    if where is not None:
        raise ValidationFailed(details={where: [UNSTORABLE]})
    if schema is None:
        return data
    if not isinstance(data, dict):
        raise ValidationFailed(details={"_schema": ["a JSON object is required"]})
    try:
        return schema.load(data)
    except marshmallow.ValidationError as exc:
        raise ValidationFailed(details=_details(exc)) from None


def read_query(request: web.Request, schema: marshmallow.Schema, _: type[T]) -> T:
    """The query string loaded by `schema` (into a `T`); 422 with per-field details (a
    value Postgres cannot store included)."""
    query = dict(request.query)
    refused = {name: [UNSTORABLE] for name, value in query.items() if not storable(value)}
    if refused:
        raise ValidationFailed("the query string is invalid", details=refused)
    try:
        loaded: T = schema.load(query)
    except marshmallow.ValidationError as exc:
        raise ValidationFailed("the query string is invalid", details=_details(exc)) from None
    return loaded


def _details(exc: marshmallow.ValidationError) -> dict[str, Any]:
    return exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}


def uuid_in_path(request: web.Request, name: str, what: str) -> uuid.UUID:
    """The path parameter `name` as a UUID; anything else names no such thing: a 404
    ("no `what` '...'"), not a 422, since a path is an address, not a body."""
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} {raw[:64]!r}") from None

"""Each service documents its own part of the public API; the gateway joins the parts.

A service lists its public operations as `Operation`s (`services/<name>/openapi.py`, with
the marshmallow schemas that really load its bodies) and `make_app(..., api=...)` serves
them at `GET /openapi.json` as an OpenAPI 3 fragment: `paths` plus the `components` they
use. The gateway, which knows who may call what, fetches every fragment behind its route
table and publishes the joined document at `/api/openapi.json`; no service imports
another's schemas, and what is documented is what the service itself declares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from . import __version__
from .fields import Checked
from .http import json_response

__all__ = [
    "OPENAPI",
    "ErrorSchema",
    "Operation",
    "Query",
    "fragment",
    "openapi_route",
]

OPENAPI = "3.0.3"

STATUS_TEXT = {
    400: "Malformed JSON",
    401: "No or bad token",
    403: "Wrong role",
    404: "Unknown or another user's resource",
    409: "Conflict",
    413: "Body over 1 MiB",
    422: "Invalid body",
    429: "Rate limited",
    502: "An upstream service failed",
    503: "An upstream service is unavailable",
    504: "An upstream service timed out",
}
ALWAYS = (413, 429, 502, 504)
"""Answers any call through the gateway may get."""


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    """One query-string parameter of an operation."""

    name: str
    type: str
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """How one public operation is documented."""

    method: str
    path: str
    summary: str
    request: type[Schema] | None = None
    status: int = 200
    response: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    query: tuple[Query, ...] = ()


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Operation, service: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": [service]}
    params: list[dict[str, Any]] = [
        {"name": q.name, "in": "query", "schema": {"type": q.type}, "description": q.description}
        for q in op.query
    ]
    params += [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _path_params(op.path)
    ]
    if params:
        doc["parameters"] = params
    if op.request is not None:
        content = {"application/json": {"schema": op.request}}
        doc["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": op.response}}
    responses: dict[str, Any] = {str(op.status): ok}
    for code in (*op.errors, *ALWAYS):
        responses[str(code)] = {
            "description": STATUS_TEXT.get(code, "Upstream trouble"),
            "content": {"application/json": {"schema": "Error"}},
        }
    doc["responses"] = responses
    return doc


def fragment(service: str, operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI document of `operations` alone: their `paths` and `components`."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=f"MicroShop {service}",
        version=__version__,
        openapi_version=OPENAPI,
        plugins=[plugin],
    )
    plugin.map_to_openapi_type(Checked, "string", None)  # type: ignore[no-untyped-call]  # fields checked by domain rules
    spec.components.schema("Error", schema=ErrorSchema)
    by_path: dict[str, dict[str, Any]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method.lower()] = _operation(op, service)
    for path, ops in by_path.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def openapi_route(service: str, operations: Sequence[Operation]) -> web.RouteDef:
    """`GET /openapi.json`: this service's fragment (the gateway joins them)."""
    document = fragment(service, operations)

    async def openapi(request: web.Request) -> web.Response:
        return json_response(document)

    return web.get("/openapi.json", openapi)

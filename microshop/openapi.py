"""Each service documents its own part of the public API; the gateway joins the parts.

A service documents each public route where it is defined, with `@documented(...)` (the
summary, the marshmallow schemas that really load its body, the answer, the errors), and
`make_app` serves the documented routes at `GET /openapi.json` as an OpenAPI 3 fragment:
`paths` plus the `components` they use. The gateway, which knows who may call what,
fetches every fragment behind its route table and publishes the joined document at
`/api/openapi.json`: no service imports another's schemas, and what is documented is what
the service itself declares, next to the code that implements it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from . import __version__
from .fields import Checked
from .http import json_response

__all__ = [
    "OPENAPI",
    "Doc",
    "ErrorSchema",
    "Operation",
    "PricedLineSchema",
    "documented",
    "fragment",
    "openapi_route",
    "operations_of",
]

H = TypeVar("H", bound=Callable[..., Any])
_DOC = "__microshop_api__"

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


class PricedLineSchema(Schema):
    """A line of a cart or an order: a product, its price and quantity, the line's total."""

    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(as_string=True, required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Decimal(as_string=True, required=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Doc:
    """How a route is documented: its body, its answer, the errors it may give."""

    summary: str | None = None
    request: type[Schema] | None = None
    status: int = 200
    response: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    query: type[Schema] | None = None
    """The schema that parses its query string (each field a parameter, with its limits)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One documented operation: a method and path, and its `Doc`."""

    method: str
    path: str
    summary: str
    doc: Doc


def documented(
    *,
    summary: str | None = None,
    request: type[Schema] | None = None,
    status: int = 200,
    response: type[Schema] | None = None,
    errors: tuple[int, ...] = (),
    query: type[Schema] | None = None,
) -> Callable[[H], H]:
    """Document the route handler it decorates (below its `@routes.get(...)` line); the
    summary is the first line of the handler's docstring unless given."""

    def mark(handler: H) -> H:
        setattr(handler, _DOC, Doc(summary, request, status, response, errors, query))
        return handler

    return mark


def operations_of(routes: Iterable[web.AbstractRouteDef]) -> list[Operation]:
    """The `Operation` of every `@documented` route in `routes`."""
    found = []
    for route in routes:
        handler = getattr(route, "handler", None)
        doc = getattr(handler, _DOC, None)
        if not isinstance(route, web.RouteDef) or not isinstance(doc, Doc):
            continue
        summary = doc.summary or (handler.__doc__ or "").strip().split("\n")[0].rstrip(".")
        if not summary:
            raise ValueError(f"{route.method} {route.path}: a documented route needs a summary")
        found.append(Operation(route.method, route.path, summary, doc))
    return found


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation(op: Operation, service: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary, "tags": [service]}
    params: list[dict[str, Any]] = []
    if op.doc.query is not None:  # the plugin turns each field into a parameter
        params.append({"in": "query", "schema": op.doc.query})
    params += [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _path_params(op.path)
    ]
    if params:
        doc["parameters"] = params
    if op.doc.request is not None:
        content = {"application/json": {"schema": op.doc.request}}
        doc["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "Success"}
    if op.doc.response is not None:
        ok["content"] = {"application/json": {"schema": op.doc.response}}
    responses: dict[str, Any] = {str(op.doc.status): ok}
    for code in (*op.doc.errors, *ALWAYS):
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

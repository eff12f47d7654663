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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from . import __version__
from .fields import Checked
from .http import json_response

__all__ = [
    "CURRENCY_PATTERN",
    "MONEY_PATTERN",
    "NO_NUL",
    "OPENAPI",
    "Doc",
    "ErrorSchema",
    "Money",
    "Operation",
    "PricedLineSchema",
    "documented",
    "fragment",
    "openapi_route",
    "operations_of",
    "trimmed_text",
    "whole",
]

H = TypeVar("H", bound=Callable[..., Any])
_DOC = "__microshop_api__"

OPENAPI = "3.0.3"

STATUS_TEXT = {
    304: "Not modified (the ETag in If-None-Match)",
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
ALWAYS = (413, 429, 502, 503, 504)
"""Answers any call through the gateway may get."""


MONEY_PATTERN = r"^[0-9]+\.[0-9]{2}$"
"""Money in an answer: a decimal string with exactly two places (`"19.99"`), never a number."""
CURRENCY_PATTERN = r"^[A-Z]{3}(?!\n)$"  # `whole("[A-Z]{3}")`
NO_NUL = r"^[^\x00]*$"
"""Every string of the API, in and out: Postgres text holds no NUL (a request with one is a
422), so the document says so for each string it does not constrain further."""


_CONTROL = r"\x00-\x1f\x7f-\x9f"
"""Control characters (Unicode Cc), for a regex class. (An unpaired surrogate is refused
too, by every JSON body's reading, but UTF-8 cannot carry one and not every regex engine
can name one, so patterns leave it out.)"""


def whole(body: str) -> str:
    """A pattern that `body` must match entirely: `^(?:body)$`, where the end is the end
    in every regex dialect (Python's `$` also matches before a final newline)."""
    return rf"^(?:{body})(?!\n)$"


def trimmed_text(
    maximum: int, *, optional: bool = False, control: str = _CONTROL, any_space: bool = False
) -> str:
    """The pattern of text that is 1 (0 when `optional`) to `maximum` characters once the
    surrounding whitespace is trimmed and holds none of the `control` characters (a regex
    class body). The whitespace around the text may hold none of them either, unless
    `any_space` (it is trimmed before the text is checked)."""
    edge = r"\s*" if any_space else rf"[^\S{control}]*"
    end, inner = rf"[^\s{control}]", rf"[^{control}]"
    core = rf"{end}(?:{inner}{{0,{maximum - 2}}}{end})?"
    return whole(f"{edge}{f'(?:{core})?' if optional else core}{edge}")


class Money(fields.Decimal):
    """An amount of money in an answer: a decimal string with two places, plus a currency
    elsewhere in the object."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"pattern": MONEY_PATTERN, "example": "19.99", **kwargs.pop("metadata", {})}
        super().__init__(as_string=True, metadata=metadata, **kwargs)


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    details = fields.Dict(
        required=True,
        metadata={"description": "what is wrong, e.g. a list of messages per field"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class PricedLineSchema(Schema):
    """A line of a cart or an order: a product, its price and quantity, the line's total."""

    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = Money(required=True)
    quantity = fields.Integer(required=True, metadata={"minimum": 1, "maximum": 99})
    line_total = Money(required=True)


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
    headers: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Request headers it reads: name -> the parameter's `schema` and `description`."""
    rules: str | None = None
    """Business rules that refuse a request the schemas accept (422 with a domain code),
    stated as `x-business-rules`: a client (and the schemathesis test) knows such a 422 is
    by design, not a document that is too loose."""
    media: str = "application/json"
    """The media type of the answer."""


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
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    rules: str | None = None,
    media: str = "application/json",
) -> Callable[[H], H]:
    """Document the route handler it decorates (below its `@routes.get(...)` line); the
    summary is the first line of the handler's docstring unless given."""

    def mark(handler: H) -> H:
        doc = Doc(summary, request, status, response, errors, query, dict(headers or {}), rules)
        setattr(handler, _DOC, dataclasses.replace(doc, media=media))
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
    params += [
        {"name": name, "in": "header", "required": False, **header}
        for name, header in op.doc.headers.items()
    ]
    if params:
        doc["parameters"] = params
    if op.doc.request is not None:
        content = {"application/json": {"schema": op.doc.request}}
        doc["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "Success"}
    if op.doc.response is not None:
        ok["content"] = {op.doc.media: {"schema": op.doc.response}}
    elif op.doc.media != "application/json":
        ok["content"] = {op.doc.media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.doc.status): ok}
    for code in (*op.doc.errors, *ALWAYS):
        error: dict[str, Any] = {"description": STATUS_TEXT.get(code, "Upstream trouble")}
        if code >= 400:
            error["content"] = {"application/json": {"schema": "Error"}}
        responses[str(code)] = error
    doc["responses"] = responses
    if op.doc.rules is not None:
        doc["x-business-rules"] = op.doc.rules
    return doc


def _without_nul(
    _: Any, field: fields.Field[Any], ret: dict[str, Any], **__: Any
) -> dict[str, Any]:
    """A string the schema does not constrain otherwise holds no NUL (`NO_NUL`)."""
    if ret.get("type") == "string" and not {"pattern", "enum", "format"} & set(ret):
        return {"pattern": NO_NUL}
    return {}


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
    plugin.map_to_openapi_type(Money, "string", None)  # type: ignore[no-untyped-call]
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(_without_nul)  # type: ignore[no-untyped-call]
    spec.components.schema("Error", schema=ErrorSchema)
    by_path: dict[str, dict[str, Any]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method.lower()] = _operation(op, service)
    for path, ops in by_path.items():
        spec.path(path=path, operations=ops)
    document = spec.to_dict()
    schemas = document.get("components", {}).get("schemas", {})
    for key, name in plugin.converter.refs.items():  # (schema class, modifiers...) -> name
        schemas[name].update(getattr(key[0], "OPENAPI", {}))
    return document


def openapi_route(service: str, operations: Sequence[Operation]) -> web.RouteDef:
    """`GET /openapi.json`: this service's fragment (the gateway joins them)."""
    document = fragment(service, operations)

    async def openapi(request: web.Request) -> web.Response:
        return json_response(document)

    return web.get("/openapi.json", openapi)

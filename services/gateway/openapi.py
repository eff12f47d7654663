"""The OpenAPI 3 document of the public API, generated from marshmallow schemas (apispec),
and a self-contained HTML page that renders it (no CDN: the page must work offline)."""

from __future__ import annotations

import dataclasses
import functools
import html
import json
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from microshop import __version__
from microshop.fields import Checked
from microshop.http import json_response
from services.auth.schemas import LoginSchema, RegisterSchema
from services.cart.schemas import AddItemSchema, SetQuantitySchema
from services.product.schemas import NewProductSchema, ProductChangesSchema

from .routing import ROUTES

__all__ = ["build_spec", "docs_routes"]


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class AccountSchema(Schema):
    id = fields.UUID(required=True)
    email = fields.Email(required=True)
    roles = fields.List(fields.String())


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True)


class ProductSchema(Schema):
    id = fields.UUID(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String()
    price = fields.Decimal(as_string=True, required=True, metadata={"example": "19.99"})
    currency = fields.String(required=True, metadata={"example": "EUR"})
    image_url = fields.String()
    active = fields.Boolean(required=True)


class ProductPageSchema(Schema):
    items = fields.List(fields.Nested(ProductSchema), required=True)
    total = fields.Integer(required=True)


class CartLineSchema(Schema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(as_string=True, required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Decimal(as_string=True, required=True)


class CartSchema(Schema):
    items = fields.List(fields.Nested(CartLineSchema), required=True)
    total = fields.Decimal(as_string=True, required=True)
    currency = fields.String(allow_none=True)
    version = fields.Integer(required=True)


class OrderLineSchema(Schema):
    product_id = fields.String(required=True)
    name = fields.String(required=True)
    unit_price = fields.Decimal(as_string=True, required=True)
    quantity = fields.Integer(required=True)
    line_total = fields.Decimal(as_string=True, required=True)


class OrderSchema(Schema):
    id = fields.UUID(required=True)
    status = fields.String(
        required=True,
        metadata={"enum": ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "CANCELLED"]},
    )
    items = fields.List(fields.Nested(OrderLineSchema), required=True)
    total = fields.Decimal(as_string=True, required=True)
    currency = fields.String(required=True)
    payment_attempts = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)


class TimelineEntrySchema(Schema):
    type = fields.String(required=True)
    stream_version = fields.Integer(required=True)
    recorded_at = fields.DateTime(required=True)
    data = fields.Dict(required=True)
    correlation_id = fields.String(allow_none=True)


class TimelineSchema(Schema):
    items = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class LogLineSchema(Schema):
    ts = fields.DateTime()
    service = fields.String()
    level = fields.String()
    message = fields.String()
    correlation_id = fields.String(allow_none=True)


class LogListSchema(Schema):
    items = fields.List(fields.Nested(LogLineSchema), required=True)


class JwksSchema(Schema):
    keys = fields.List(fields.Dict(), required=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Doc:
    """How one operation is documented."""

    summary: str
    request: type[Schema] | None = None
    status: int = 200
    response: type[Schema] | None = None
    errors: tuple[int, ...] = ()


OPERATIONS: dict[tuple[str, str], Doc] = {
    ("/api/auth/register", "POST"): Doc(
        "Create an account",
        request=RegisterSchema,
        status=201,
        response=AccountSchema,
        errors=(400, 409, 422),
    ),
    ("/api/auth/login", "POST"): Doc(
        "Get an access token",
        request=LoginSchema,
        response=TokenSchema,
        errors=(400, 401, 422, 429),
    ),
    ("/api/auth/me", "GET"): Doc("The caller's account", response=AccountSchema, errors=(401,)),
    ("/.well-known/jwks.json", "GET"): Doc(
        "Public keys that verify access tokens", response=JwksSchema
    ),
    ("/api/products", "GET"): Doc("Search the catalog", response=ProductPageSchema, errors=(422,)),
    ("/api/products", "POST"): Doc(
        "Add a product",
        request=NewProductSchema,
        status=201,
        response=ProductSchema,
        errors=(400, 401, 403, 409, 422),
    ),
    ("/api/products/{id}", "GET"): Doc("One product", response=ProductSchema, errors=(404,)),
    ("/api/products/{id}", "PATCH"): Doc(
        "Change a product",
        request=ProductChangesSchema,
        response=ProductSchema,
        errors=(400, 401, 403, 404, 409, 422),
    ),
    ("/api/products/{id}", "DELETE"): Doc(
        "Discontinue a product", status=204, errors=(401, 403, 404)
    ),
    ("/api/products/{id}/image.svg", "GET"): Doc("The product's picture (SVG)", errors=(404,)),
    ("/api/cart", "GET"): Doc("The caller's cart", response=CartSchema, errors=(401,)),
    ("/api/cart", "DELETE"): Doc("Empty the cart", status=204, errors=(401,)),
    ("/api/cart/items", "POST"): Doc(
        "Add to a cart line", request=AddItemSchema, response=CartSchema, errors=(400, 401, 422)
    ),
    ("/api/cart/items/{product_id}", "PUT"): Doc(
        "Set a line's quantity (0 removes it)",
        request=SetQuantitySchema,
        response=CartSchema,
        errors=(400, 401, 404, 422),
    ),
    ("/api/cart/items/{product_id}", "DELETE"): Doc(
        "Remove a line", response=CartSchema, errors=(401, 404)
    ),
    ("/api/orders", "GET"): Doc(
        "The caller's orders, newest first", response=OrderListSchema, errors=(401,)
    ),
    ("/api/orders", "POST"): Doc(
        "Place an order from the cart (Idempotency-Key honoured)",
        status=201,
        response=OrderSchema,
        errors=(401, 422),
    ),
    ("/api/orders/{id}", "GET"): Doc(
        "One order (optionally long-polled)", response=OrderSchema, errors=(401, 404, 422)
    ),
    ("/api/orders/{id}/events", "GET"): Doc(
        "The order's event timeline", response=TimelineSchema, errors=(401, 404)
    ),
    ("/api/orders/{id}/retry-payment", "POST"): Doc(
        "Retry a failed payment", status=202, response=OrderSchema, errors=(401, 404, 409)
    ),
    ("/api/orders/{id}/cancel", "POST"): Doc(
        "Cancel an order that is not final", response=OrderSchema, errors=(401, 404, 409)
    ),
    ("/api/logs", "GET"): Doc(
        "Search the central logs", response=LogListSchema, errors=(401, 403, 422)
    ),
}

_QUERY = {
    ("/api/products", "GET"): [("q", "string", "words in the name or description"),
                               ("limit", "integer", "1..100, default 20"),
                               ("offset", "integer", ">= 0")],
    ("/api/orders/{id}", "GET"): [
        ("wait", "number", "long polling: up to this many seconds (max 25) for a change"),
        ("while_status", "string", "answer once the status is no longer this one "
                                   "(default PENDING_PAYMENT)")],
    ("/api/logs", "GET"): [("service", "string", "e.g. order-consumer"),
                           ("level", "string", "DEBUG, INFO, WARN, ERROR or FATAL"),
                           ("correlation_id", "string", ""), ("request_id", "string", ""),
                           ("since", "string", "ISO 8601 time"), ("until", "string", "ISO 8601"),
                           ("q", "string", "words in the message"),
                           ("limit", "integer", "1..1000, default 100; newest first")],
}  # fmt: skip

_STATUS_TEXT = {400: "Malformed JSON", 401: "No or bad token", 403: "Wrong role",
                404: "Unknown or another user's resource", 409: "Conflict",
                413: "Body over 1 MiB", 422: "Invalid body", 429: "Rate limited"}  # fmt: skip


@functools.cache
def build_spec() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="MicroShop API",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={
            "description": "Errors are `{error: {code, message, details}}`; money is a "
            "decimal string plus `currency`."
        },
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                "bearerFormat": "JWT"})  # fmt: skip
    plugin.map_to_openapi_type(Checked, "string", None)  # type: ignore[no-untyped-call]  # fields checked by domain rules
    spec.components.schema("Error", schema=ErrorSchema)
    for route in ROUTES:
        operations: dict[str, Any] = {}
        for method, access in route.methods.items():
            doc = OPERATIONS[(route.path, method)]
            op: dict[str, Any] = {"summary": doc.summary, "tags": [route.service]}
            if access != "public":
                op["security"] = [{"bearer": []}]
                op["description"] = f"Needs a bearer token ({access})."
            params: list[dict[str, Any]] = [
                {"name": n, "in": "query", "schema": {"type": t}, "description": d}
                for n, t, d in _QUERY.get((route.path, method), [])
            ]
            params += [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                       for p in _path_params(route.path)]  # fmt: skip
            if params:
                op["parameters"] = params
            if doc.request is not None:
                content = {"application/json": {"schema": doc.request}}
                op["requestBody"] = {"required": True, "content": content}
            ok: dict[str, Any] = {"description": "Success"}
            if doc.response is not None:
                ok["content"] = {"application/json": {"schema": doc.response}}
            responses: dict[str, Any] = {str(doc.status): ok}
            for code in (*doc.errors, 413, 429, 502, 504):
                responses[str(code)] = {
                    "description": _STATUS_TEXT.get(code, "Upstream trouble"),
                    "content": {"application/json": {"schema": "Error"}},
                }
            op["responses"] = responses
            operations[method.lower()] = op
        spec.path(path=route.path, operations=operations)
    return spec.to_dict()


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_spec())


async def docs(request: web.Request) -> web.Response:
    """A readable page of every endpoint, rendered on the server from the same document."""
    spec = build_spec()
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = json.dumps(body.get("schema", ""), indent=1) if body else ""
            codes = ", ".join(op["responses"])
            lock = "🔒 " if "security" in op else ""
            rows.append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{lock}{html.escape(op['summary'])}</td><td>{codes}</td>"
                f"<td><pre>{html.escape(schema)}</pre></td></tr>"
            )
    page = f"""<!doctype html><html lang=en><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>MicroShop API</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left;vertical-align:top}}.m{{font-weight:700}}pre{{margin:0;font-size:12px}}</style>
<h1>MicroShop API {html.escape(spec["info"]["version"])}</h1>
<p>{html.escape(spec["info"]["description"])} Machine-readable:
<a href="/api/openapi.json">/api/openapi.json</a>. 🔒 needs <code>Authorization: Bearer
&lt;token&gt;</code> from <code>POST /api/auth/login</code>.</p>
<table><tr><th>Method</th><th>Path</th><th>What</th><th>Statuses</th><th>Body</th></tr>
{"".join(rows)}</table></html>"""
    return web.Response(text=page, content_type="text/html")


def docs_routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", openapi), web.get("/api/docs", docs)]

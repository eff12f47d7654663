"""The API document: each service's own fragment, joined by the gateway's route table."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from microshop.openapi import Doc, Operation, fragment, operations_of
from services.auth.privacy import privacy_routes
from services.auth.views import routes as auth
from services.cart.views import routes as cart
from services.gateway.openapi import join
from services.gateway.routing import ROUTES
from services.log.views import routes as log
from services.order.views import routes as order
from services.product.views import routes as product

SERVICES = {
    name: operations_of(routes)
    for name, routes in {
        "auth": [*auth, *privacy_routes],
        "cart": cart,
        "log": log,
        "order": order,
        "product": product,
    }.items()
}


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def joined() -> dict[str, Any]:
    return join({name: fragment(name, ops) for name, ops in SERVICES.items()})


def test_every_route_of_the_gateway_is_documented_by_its_service() -> None:
    spec = joined()
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    routed = {(r.path, m) for r in ROUTES for m in r.methods}
    assert documented == routed
    declared = {(op.path, op.method) for ops in SERVICES.values() for op in ops}
    assert declared == routed  # no service documents what the gateway does not route


def test_the_gateway_adds_who_may_call() -> None:
    paths = joined()["paths"]
    for route in ROUTES:
        for method, access in route.methods.items():
            op = paths[route.path][method.lower()]
            assert ("security" in op) == (access != "public"), (route.path, method)
            assert op["tags"] == [route.service]


def test_every_schema_reference_resolves() -> None:
    spec = joined()
    schemas = spec["components"]["schemas"]
    for ref in refs(spec["paths"]) | refs(schemas):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    register = spec["paths"]["/api/auth/register"]["post"]
    assert "requestBody" in register and {"201", "409", "422", "413"} <= set(register["responses"])


def test_two_services_naming_different_schemas_alike_keep_both() -> None:
    class LineSchema(Schema):
        sku = fields.String(required=True)

    class OtherLineSchema(Schema):
        price = fields.Decimal(as_string=True)

    OtherLineSchema.__name__ = "LineSchema"
    one = fragment("cart", [Operation("GET", "/api/cart", "a", Doc(response=LineSchema))])
    two = fragment("order", [Operation("GET", "/api/orders", "b", Doc(response=OtherLineSchema))])
    spec = join({"cart": one, "order": two})
    schemas = spec["components"]["schemas"]
    assert "sku" in schemas["Line"]["properties"]
    assert "price" in schemas["order.Line"]["properties"]
    ok = spec["paths"]["/api/orders"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/order.Line"}


def test_time_travel_is_documented_on_the_order() -> None:
    op = joined()["paths"]["/api/orders/{id}"]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert set(params) == {"wait", "while_status", "as_of"}
    as_of = params["as_of"]
    assert as_of["schema"] == {"type": "string", "format": "date-time"}
    assert not as_of["required"]
    for promise in ("timezone", "refused", "wait", "404"):
        assert promise in as_of["description"], promise
    assert {"404", "422"} <= set(op["responses"])

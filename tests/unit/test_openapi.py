"""The API document: each service's own fragment, joined by the gateway's route table."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from marshmallow import Schema, fields

from microshop import context
from microshop.domain import InvalidValue
from microshop.openapi import MONEY_PATTERN, Doc, Operation, fragment, operations_of
from services.auth.privacy import privacy_routes
from services.auth.views import routes as auth
from services.cart.views import routes as cart
from services.gateway.openapi import join
from services.gateway.routing import ROUTES
from services.log.lines import normalize_level
from services.log.schemas import LEVEL_NAMES
from services.log.views import routes as log
from services.order.views import routes as order
from services.product.domain import rules
from services.product.schemas import _query_text
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


# -- the document's patterns say what the rules accept -----------------------------------


def accepts(rule: Callable[[str], object], value: str) -> bool:
    try:
        rule(value)
    except (InvalidValue, ValueError):
        return False
    return True


def level_rule(value: str) -> None:
    if normalize_level(value) not in LEVEL_NAMES:
        raise ValueError(value)


def id_rule(value: str) -> None:
    if context.valid_id(value) is None:
        raise ValueError(value)


def property_of(schema: str, field: str) -> dict[str, Any]:
    found: dict[str, Any] = joined()["components"]["schemas"][schema]["properties"][field]
    return found


def query_parameter(path: str, name: str) -> dict[str, Any]:
    op = joined()["paths"][path]["get"]
    [parameter] = [p for p in op["parameters"] if p["name"] == name]
    found: dict[str, Any] = parameter["schema"]
    return found


SPACES = ["", " ", "  ", "\u00a0", "\u2003"]
CONTROLS = ["\x00", "\t", "\n", "\r", "\x0b", "\x1f", "\x7f", "\x85", "\x9f"]
TEXT = (
    [
        f"{left}{core}{right}"
        for core in ("a", "Mug", "café 😀", "a b", "a\tb", "a\nb", "x" * 199, "x" * 200, "x" * 201)
        for left in SPACES
        for right in SPACES[:3]
    ]
    + [f"a{c}" for c in CONTROLS]
    + [f"{c}a" for c in CONTROLS]
    + ["", "   ", "\n", "a\n", "\na"]
)


@pytest.mark.parametrize(
    ("where", "rule", "samples"),
    [
        (("NewProduct", "sku"), rules.valid_sku, ["MUG-01", "a", "a" * 64, "a" * 65, "a b", "ä",
                                                  "x.y_z-1", "MUG\n", "", "MUG-01 "]),
        (("NewProduct", "name"), rules.valid_name, TEXT),
        (("ProductChanges", "description"), rules.valid_description,
         [*TEXT, "a\n\tb", "\n\ta\n\t", "x" * 5000, "x" * 5001, " " + "x" * 5000 + "\n"]),
        (("NewProduct", "price"), rules.parse_price,
         ["19.99", "5", "0.01", "0", "0.00", "00.50", "1000000", "1000000.00", "1000000.01",
          "999999.99", "19.999", "-1", "+1", "1e3", " 1", "1 ", "1.", ".5", "1,5", "1\n",
          "0000000000000000000000000000001", "00000000000000000000000000000001"]),
        (("NewProduct", "currency"), rules.valid_currency, ["EUR", "eur", "EU", "EURO", "EUR\n"]),
        (("NewProduct", "image_url"), rules.valid_image_url,
         ["https://img.example/a.png", "http://x", "HTTP://x/y?z#w", "/static/a.svg", "//evil",
          "ftp://x", "http://", "http:///a", "a.png", "/a b", "/a\\b", "http://x/\x01", "/",
          "/" + "a" * 2047, "/" + "a" * 2048, "https://[::1]/", "/a[1]", "javascript:alert(1)"]),
    ],
)  # fmt: skip
def test_each_body_pattern_accepts_what_its_rule_accepts(
    where: tuple[str, str], rule: Callable[[str], object], samples: list[str]
) -> None:
    field = property_of(*where)
    pattern = re.compile(field["pattern"])
    for sample in samples:
        documented = bool(pattern.search(sample)) and (
            len(sample) <= field.get("maxLength", len(sample))
            and len(sample) >= field.get("minLength", 0)
        )
        assert documented == accepts(rule, sample), (where, sample)


@pytest.mark.parametrize(
    ("path", "name", "rule", "samples"),
    [
        ("/api/products", "q", _query_text, TEXT),
        ("/api/logs", "level", level_rule,
         ["ERROR", "error", " Warn ", "warning", "CRITICAL", "fatal", "info\n", "trace", ""]),
        ("/api/logs", "correlation_id", id_rule,
         ["a", "corr-1", "a:b.c_d", "a b", "a" * 128, "a" * 129, "é", "", "a\n"]),
    ],
)  # fmt: skip
def test_each_query_pattern_accepts_what_its_rule_accepts(
    path: str, name: str, rule: Callable[[str], object], samples: list[str]
) -> None:
    pattern = re.compile(query_parameter(path, name)["pattern"])
    for sample in samples:
        assert bool(pattern.search(sample)) == accepts(rule, sample), (name, sample)


def test_money_in_answers_is_a_decimal_string_and_every_answer_lists_its_fields() -> None:
    schemas = joined()["components"]["schemas"]
    for name, field in (("Product", "price"), ("Order", "total"), ("Cart", "total"),
                        ("PricedLine", "unit_price"), ("CartLine", "line_total")):  # fmt: skip
        assert schemas[name]["properties"][field]["type"] == "string", (name, field)
        assert schemas[name]["properties"][field]["pattern"] == MONEY_PATTERN
    assert {"stream", "stream_version", "recorded_at", "data", "correlation_id"} <= set(
        schemas["TimelineEntry"]["required"]
    )
    assert schemas["LogLine"]["additionalProperties"] is True  # a line's own fields
    assert {"id", "ts", "service", "level", "message"} <= set(schemas["LogLine"]["required"])
    assert schemas["ProductChanges"]["minProperties"] == 1
    assert schemas["CartLine"]["properties"]["available"]["type"] == "boolean"

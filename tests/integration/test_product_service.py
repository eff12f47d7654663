"""product-service over HTTP on the real database: the public catalog contract."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import PostgresEventStore, rebuild
from eventstore.pg import Pool
from microshop.workers import RUNNERS
from services.product.app import create_app
from services.product.domain import ProductCreated, ProductPriceChanged, ProductUpdated
from services.product.handlers import ATTEMPTS
from services.product.projections import ProductsProjection
from services.product.seed import DEMO_PRODUCTS, demo_product_id, seed_products
from tests.conftest import StackEnv
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

ADMIN_ID = str(uuid.uuid4())
ADMIN = bearer(admin_token(ADMIN_ID))
USER = bearer(mint())
JSON = {"Content-Type": "application/json"}
PRODUCT_KEYS = {"id", "sku", "name", "description", "price", "currency", "image_url", "active"}


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    return await aiohttp_client(create_app(test_env.config(), token_keys=TEST_KEYS))


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


async def create(client: Client, sku: str, **fields: Any) -> dict[str, Any]:
    body = {"sku": sku, "name": f"Product {sku}", "price": "19.99", **fields}
    resp = await client.post("/api/products", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    product: dict[str, Any] = await resp.json()
    return product


async def get(client: Client, product_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/products/{product_id}")
    assert resp.status == 200, await resp.text()
    product: dict[str, Any] = await resp.json()
    return product


async def search(client: Client, q: str, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/products", params={"q": q, **params})
    assert resp.status == 200, await resp.text()
    page: dict[str, Any] = await resp.json()
    return page


# -- happy paths and read-your-writes ----------------------------------------------------


async def test_create_answers_201_and_a_get_right_after_sees_it(client: Client, uid: str) -> None:
    resp = await client.post(
        "/api/products",
        json={
            "sku": f"MUG-{uid}",
            "name": "  Coffee Mug ",
            "price": "12.9",
            "description": "Holds 350 ml.",
            "currency": "USD",
            "image_url": "https://cdn.example/mug.png",
        },
        headers=ADMIN,
    )
    assert resp.status == 201
    created = await resp.json()
    assert set(created) == PRODUCT_KEYS
    assert uuid.UUID(created["id"])
    assert resp.headers["Location"] == f"/api/products/{created['id']}"
    assert created == {
        "id": created["id"],
        "sku": f"MUG-{uid}",
        "name": "Coffee Mug",
        "description": "Holds 350 ml.",
        "price": "12.90",
        "currency": "USD",
        "image_url": "https://cdn.example/mug.png",
        "active": True,
    }

    assert await get(client, created["id"]) == created
    assert (await search(client, f"MUG-{uid}"))["items"] == []  # the SKU is not searched
    assert (await search(client, "coffee mug"))["total"] >= 1


async def test_optional_fields_have_defaults(client: Client, uid: str) -> None:
    product = await create(client, f"d-{uid}")
    assert product["currency"] == "EUR"
    assert product["description"] == ""
    assert product["image_url"] == f"/api/products/{product['id']}/image.svg"
    assert (await client.get(product["image_url"])).status == 200


async def test_unicode_names_are_welcome(client: Client, uid: str) -> None:
    name = "Чайник ☕ 日本茶 🍵 «Ünïcödé» <b>&amp;</b>"
    product = await create(client, f"u-{uid}", name=name, description="Ωμέγα\nline two")
    assert product["name"] == name
    assert await get(client, product["id"]) == product


async def test_events_carry_who_and_which_request(
    client: Client, store: PostgresEventStore, uid: str
) -> None:
    resp = await client.post(
        "/api/products",
        json={"sku": f"m-{uid}", "name": "Meta", "price": "1.00"},
        headers={**ADMIN, "X-Correlation-ID": f"corr-{uid}"},
    )
    product = await resp.json()
    [event] = await store.read_stream(f"product-{product['id']}")
    assert event.event_type == "ProductCreated"
    assert event.data == ProductCreated(
        uuid.UUID(product["id"]), f"m-{uid}", "Meta", "", Decimal("1.00"), "EUR", None
    )
    assert event.metadata.actor == ADMIN_ID
    assert event.metadata.service == "product"
    assert event.metadata.correlation_id == f"corr-{uid}"


async def test_patch_records_price_changes_and_updates_apart(
    client: Client, store: PostgresEventStore, uid: str
) -> None:
    product = await create(client, f"p-{uid}", description="old")
    pid = product["id"]

    resp = await client.patch(f"/api/products/{pid}", json={"price": "25"}, headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["price"] == "25.00"
    assert (await get(client, pid))["price"] == "25.00"  # read-your-writes

    resp = await client.patch(
        f"/api/products/{pid}",
        json={"name": "Renamed", "image_url": "/static/x.png", "price": "26.50"},
        headers=ADMIN,
    )
    assert resp.status == 200
    patched = await resp.json()
    assert patched == {**product, "name": "Renamed", "image_url": "/static/x.png", "price": "26.50"}
    assert await get(client, pid) == patched

    # back to the generated image; the same values again change nothing
    resp = await client.patch(f"/api/products/{pid}", json={"image_url": None}, headers=ADMIN)
    assert (await resp.json())["image_url"] == f"/api/products/{pid}/image.svg"
    resp = await client.patch(
        f"/api/products/{pid}", json={"name": "Renamed", "price": "26.5"}, headers=ADMIN
    )
    assert resp.status == 200

    events = [e.data for e in await store.read_stream(f"product-{pid}")]
    product_id = uuid.UUID(pid)
    assert events[1:] == [
        ProductPriceChanged(product_id, Decimal("19.99"), Decimal("25.00"), "EUR"),
        ProductUpdated(product_id, "Renamed", "old", "/static/x.png"),
        ProductPriceChanged(product_id, Decimal("25.00"), Decimal("26.50"), "EUR"),
        ProductUpdated(product_id, "Renamed", "old", None),
    ]


async def test_delete_discontinues_once_and_freezes_the_product(
    client: Client, store: PostgresEventStore, uid: str
) -> None:
    product = await create(client, f"x-{uid}", name=f"Gone {uid}")
    pid = product["id"]
    assert (await search(client, f"Gone {uid}"))["total"] == 1

    resp = await client.delete(f"/api/products/{pid}", headers=ADMIN)
    assert resp.status == 204
    assert await resp.read() == b""
    assert await get(client, pid) == {**product, "active": False}  # still readable by id
    assert await search(client, f"Gone {uid}") == {"items": [], "total": 0}

    resp = await client.delete(f"/api/products/{pid}", headers=ADMIN)
    assert resp.status == 204  # idempotent ...
    types = [e.event_type for e in await store.read_stream(f"product-{pid}")]
    assert types == ["ProductCreated", "ProductDiscontinued"]  # ... with no new event

    for body in ({"name": "Back"}, {"price": "1.00"}, {"name": product["name"]}):
        resp = await client.patch(f"/api/products/{pid}", json=body, headers=ADMIN)
        assert resp.status == 409
        assert_error(await resp.json(), "product_discontinued")
    assert (await client.get(f"/api/products/{pid}/image.svg")).status == 200


# -- listing and search ------------------------------------------------------------------


async def test_listing_pages_in_name_order_with_a_total(client: Client, uid: str) -> None:
    names = [f"{uid} item {c}" for c in "dbeac"] + [f"{uid} item a"]  # one name twice
    made = [await create(client, f"l{i}-{uid}", name=n) for i, n in enumerate(names)]
    expected = sorted(made, key=lambda p: (p["name"], p["id"]))

    page = await search(client, f"{uid} item")
    assert page == {"items": expected, "total": 6}
    seen = []
    for offset in (0, 2, 4):
        page = await search(client, uid, limit=2, offset=offset)
        assert page["total"] == 6
        assert len(page["items"]) == 2
        seen += page["items"]
    assert seen == expected
    assert await search(client, uid, limit=2, offset=6) == {"items": [], "total": 6}
    assert await search(client, uid, offset=1000) == {"items": [], "total": 6}

    everything = await (await client.get("/api/products")).json()
    assert len(everything["items"]) == min(20, everything["total"])
    assert everything["total"] >= 6
    assert all(p["active"] for p in everything["items"])
    assert len((await search(client, "", limit=100))["items"]) == min(100, everything["total"])


async def test_search_matches_name_and_description_ignoring_case(client: Client, uid: str) -> None:
    by_name = await create(client, f"s1-{uid}", name=f"Zebra{uid} lamp")
    by_text = await create(client, f"s2-{uid}", name="Plain", description=f"a ZEBRA{uid} print")
    await create(client, f"s3-{uid}", name="Other", description="nothing to see")
    page = await search(client, f"zebra{uid}")
    assert {p["id"] for p in page["items"]} == {by_name["id"], by_text["id"]}
    assert page["total"] == 2
    assert (await search(client, f"  ZeBrA{uid} LAMP  "))["items"] == [by_name]


async def test_search_takes_wildcards_literally(client: Client, uid: str) -> None:
    percent = await create(client, f"w1-{uid}", name=f"{uid} 100% cotton")
    await create(client, f"w2-{uid}", name=f"{uid} 100 cotton")
    under = await create(client, f"w3-{uid}", name=f"{uid} a_b")
    await create(client, f"w4-{uid}", name=f"{uid} axb")
    slash = await create(client, f"w5-{uid}", name=f"{uid} back\\slash")

    assert (await search(client, f"{uid} 100%"))["items"] == [percent]
    assert (await search(client, f"{uid} 100% c"))["items"] == [percent]
    assert (await search(client, f"{uid} a_b"))["items"] == [under]
    assert (await search(client, f"{uid} back\\s"))["items"] == [slash]
    assert (await search(client, f"{uid} %"))["total"] == 0


# -- authentication and authorisation ----------------------------------------------------


async def test_changes_need_an_admin(client: Client, uid: str) -> None:
    product = await create(client, f"a-{uid}")
    path = f"/api/products/{product['id']}"
    body = {"sku": f"a2-{uid}", "name": "x", "price": "1.00"}
    calls = [
        ("POST", "/api/products", body),
        ("PATCH", path, {"name": "y"}),
        ("DELETE", path, None),
    ]
    for method, url, json_body in calls:
        resp = await client.request(method, url, json=json_body)
        assert resp.status == 401, (method, url)
        assert_error(await resp.json(), "unauthorized")
        assert "Bearer" in resp.headers["WWW-Authenticate"]

        untrusted = bearer(mint(other_key=True, roles=("admin",)))
        resp = await client.request(method, url, json=json_body, headers=untrusted)
        assert resp.status == 401
        assert_error(await resp.json(), "invalid_token")

        resp = await client.request(method, url, json=json_body, headers=USER)
        assert resp.status == 403, (method, url)
        assert_error(await resp.json(), "forbidden")
    assert await get(client, product["id"]) == product  # nothing changed
    assert (await client.get("/api/products", headers=USER)).status == 200  # reads are open


# -- not found ---------------------------------------------------------------------------


@pytest.mark.parametrize("product_id", [str(uuid.uuid4()), "not-a-uuid", "1", "%00", "x" * 500])
async def test_unknown_or_malformed_ids_are_404(client: Client, product_id: str) -> None:
    for method, path, body in [
        ("GET", f"/api/products/{product_id}", None),
        ("GET", f"/api/products/{product_id}/image.svg", None),
        ("PATCH", f"/api/products/{product_id}", {"name": "x"}),
        ("DELETE", f"/api/products/{product_id}", None),
    ]:
        resp = await client.request(method, path, json=body, headers=ADMIN)
        assert resp.status == 404, (method, path)
        assert_error(await resp.json(), "not_found")


# -- SKU uniqueness ----------------------------------------------------------------------


async def test_a_taken_sku_is_409(client: Client, uid: str) -> None:
    first = await create(client, f"dup-{uid}")
    again = {"sku": f"dup-{uid}", "name": "Again", "price": "1.00"}
    resp = await client.post("/api/products", json=again, headers=ADMIN)
    assert resp.status == 409
    body = await resp.json()
    assert_error(body, "sku_taken")
    assert body["error"]["details"] == {"sku": f"dup-{uid}"}

    await client.delete(f"/api/products/{first['id']}", headers=ADMIN)
    resp = await client.post("/api/products", json=again, headers=ADMIN)
    assert resp.status == 409  # a discontinued product keeps its SKU
    resp = await client.post("/api/products", json={**again, "sku": f"DUP-{uid}"}, headers=ADMIN)
    assert resp.status == 201  # SKUs are case-sensitive


async def test_racing_creates_of_one_sku_make_one_product(
    client: Client, pool: Pool, uid: str
) -> None:
    sku = f"race-{uid}"
    body = {"sku": sku, "name": "Racer", "price": "5.00"}
    responses = await asyncio.gather(
        *(client.post("/api/products", json=body, headers=ADMIN) for _ in range(8))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 7
    created = sum(
        1
        for row in await pool.fetch(
            "SELECT data FROM events WHERE event_type = 'ProductCreated' AND data->>'sku' = $1",
            sku,
        )
    )
    assert created == 1  # the SKU row and the event are written together, or not at all
    assert await pool.fetchval("SELECT count(*) FROM product_skus WHERE sku = $1", sku) == 1


# -- optimistic concurrency --------------------------------------------------------------


async def test_concurrent_changes_are_decided_again_and_form_one_chain(
    client: Client, store: PostgresEventStore, uid: str
) -> None:
    """Each racer loses at most once per rival that wins, so with fewer rivals than
    `handlers.ATTEMPTS` every change lands; each was decided on its predecessor's state."""
    product = await create(client, f"cc-{uid}", price="0.50")
    pid = product["id"]
    for round_ in range(3):  # every price differs from every other: each request changes it
        prices = [f"{round_}{n}.00" for n in range(1, 1 + ATTEMPTS)]
        responses = await asyncio.gather(
            *(
                client.patch(f"/api/products/{pid}", json={"price": p}, headers=ADMIN)
                for p in prices
            )
        )
        assert [r.status for r in responses] == [200] * len(prices)

    changes = [e.data for e in await store.read_stream(f"product-{pid}")][1:]
    assert len(changes) == 3 * ATTEMPTS
    current = Decimal("0.50")
    for change in changes:
        assert isinstance(change, ProductPriceChanged)
        assert change.old_price == current
        current = change.new_price
    assert (await get(client, pid))["price"] == str(current)


async def test_changes_that_keep_losing_races_are_409(
    client: Client, store: PostgresEventStore, uid: str
) -> None:
    product = await create(client, f"cl-{uid}", price="1.00")
    pid = product["id"]
    responses = await asyncio.gather(
        *(
            client.patch(f"/api/products/{pid}", json={"price": f"{n}.00"}, headers=ADMIN)
            for n in range(2, 22)
        )
    )
    statuses = [r.status for r in responses]
    assert set(statuses) <= {200, 409}
    for resp in responses:
        if resp.status == 409:
            assert_error(await resp.json(), "concurrency_conflict")
    changes = await store.read_stream(f"product-{pid}")
    assert len(changes) - 1 == statuses.count(200)


# -- validation --------------------------------------------------------------------------


VALID = {"sku": "ok-sku", "name": "Fine", "price": "9.99"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sku": None}, "sku"),
        ({"name": None}, "name"),
        ({"price": None}, "price"),
        ({"sku": ""}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"sku": "bad sku!"}, "sku"),
        ({"sku": "ümlaut"}, "sku"),
        ({"sku": 123}, "sku"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": ["x"]}, "name"),
        ({"name": "nul\u0000"}, "name"),
        ({"name": "bell\u0007"}, "name"),
        ({"description": "d" * 5001}, "description"),
        ({"description": 5}, "description"),
        ({"price": 19.99}, "price"),
        ({"price": 20}, "price"),
        ({"price": "19.999"}, "price"),
        ({"price": "0"}, "price"),
        ({"price": "0.00"}, "price"),
        ({"price": "-1.00"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "1e3"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": "1000000.01"}, "price"),
        ({"price": "9" * 50}, "price"),
        ({"price": " 1.00"}, "price"),
        ({"price": True}, "price"),
        ({"price": {}}, "price"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": 978}, "currency"),
        ({"currency": None}, "currency"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"image_url": 42}, "image_url"),
        ({"image_url": "//evil.example/x.png"}, "image_url"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_create_validation_is_422_per_field(
    client: Client, changes: dict[str, Any], field: str
) -> None:
    body = {key: value for key, value in {**VALID, **changes}.items() if value is not None}
    if None in changes.values():
        body = {k: v for k, v in body.items() if k not in changes}  # missing ...
        if field == "currency":
            body[field] = None  # ... except where a default exists: explicit null instead
    resp = await client.post("/api/products", json=body, headers=ADMIN)
    assert resp.status == 422, await resp.text()
    details = (await resp.json())["error"]["details"]
    assert_error(await resp.json(), "validation_error")
    assert set(details) == {field}, details
    assert all(isinstance(m, str) for m in details[field])


async def test_a_refusal_names_the_rule_under_its_field(client: Client) -> None:
    """The message is the rule's own words: the field is the key it is reported under."""
    for changes, field, message in [
        ({"price": "0"}, "price", "must be greater than 0"),
        ({"currency": "eur"}, "currency", "must be 3 uppercase letters (ISO 4217), e.g. EUR"),
        ({"name": "   "}, "name", "must be 1 to 200 characters (not only spaces)"),
    ]:
        resp = await client.post("/api/products", json={**VALID, **changes}, headers=ADMIN)
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["error"]["details"] == {field: [message]}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"sku": "ok", "name": "x", "price": 1e400}',
        b'{"sku": "ok", "name": "x", "price": 99999999999999999999999999999999999999}',
        b'{"sku": "ok", "name": "lone \\ud800 surrogate", "price": "1.00"}',
        b'{"sku": "ok", "name": "x\\u0000", "price": "1.00"}',
        b'{"sku": "ok", "name": "x", "price": "1.00", "description": "\\udfff"}',
        b'{"sku": "ok", "name": "x", "price": "1.00", "image_url": "/x\\u0000"}',
    ],
)
async def test_numbers_and_strings_postgres_cannot_hold_are_422(client: Client, raw: bytes) -> None:
    resp = await client.post("/api/products", data=raw, headers={**ADMIN, **JSON})
    assert resp.status == 422, await resp.text()
    assert_error(await resp.json(), "validation_error")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "_schema"),
        ({"currency": "USD"}, "currency"),
        ({"sku": "other"}, "sku"),
        ({"price": 1.5}, "price"),
        ({"price": "1.001"}, "price"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"description": None}, "description"),
        ({"image_url": "ftp://x/y"}, "image_url"),
    ],
)
async def test_patch_validation_is_422(
    client: Client, uid: str, body: dict[str, Any], field: str
) -> None:
    product = await create(client, f"pv-{uid}")
    resp = await client.patch(f"/api/products/{product['id']}", json=body, headers=ADMIN)
    assert resp.status == 422, await resp.text()
    payload = await resp.json()
    assert_error(payload, "validation_error")
    assert field in payload["error"]["details"]
    assert await get(client, product["id"]) == product


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=99999999999999999999999", "offset"),
        ("offset=x", "offset"),
        ("q=%00", "q"),
        ("q=a%0Ab", "q"),
        ("q=" + "x" * 201, "q"),
    ],
)
async def test_bad_list_parameters_are_422(client: Client, query: str, field: str) -> None:
    resp = await client.get(f"/api/products?{query}")
    assert resp.status == 422, await resp.text()
    payload = await resp.json()
    assert_error(payload, "validation_error")
    assert set(payload["error"]["details"]) == {field}


async def test_list_parameters_at_their_limits_are_fine(client: Client) -> None:
    for query in ("limit=1", "limit=100", "offset=0", "offset=2147483647", "q=", "unknown=1"):
        assert (await client.get(f"/api/products?{query}")).status == 200, query


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (b"", 400, "bad_request"),
        (b'{"sku": "a", "name": "b", "price": NaN}', 400, "bad_request"),
        (b'["sku", "name"]', 422, "validation_error"),
        (b'"just a string"', 422, "validation_error"),
    ],
)
async def test_malformed_bodies(
    client: Client, uid: str, raw: bytes, status: int, code: str
) -> None:
    product = await create(client, f"mb-{uid}")
    for method, path in [("POST", "/api/products"), ("PATCH", f"/api/products/{product['id']}")]:
        resp = await client.request(method, path, data=raw, headers={**ADMIN, **JSON})
        assert resp.status == status, (method, await resp.text())
        assert_error(await resp.json(), code)


async def test_bodies_over_one_mebibyte_are_413(client: Client, uid: str) -> None:
    product = await create(client, f"big-{uid}")
    big = json.dumps({"sku": "x", "name": "y", "price": "1.00", "description": "d" * 1_100_000})
    for method, path in [("POST", "/api/products"), ("PATCH", f"/api/products/{product['id']}")]:
        resp = await client.request(
            method, path, data=io.BytesIO(big.encode()), headers={**ADMIN, **JSON}
        )
        assert resp.status == 413
        assert_error(await resp.json(), "payload_too_large")


async def test_no_client_mistake_is_a_500(client: Client, uid: str) -> None:
    product = await create(client, f"fz-{uid}")
    pid = product["id"]
    bodies: list[bytes] = [
        b"null",
        b"true",
        b"0",
        b"[]",
        b"{}",
        b'{"price": {"$gt": 0}}',
        b'{"name": []}',
        b"[" * 5000,
        b'{"sku": "a", "name": "b", "price": "1.00", "sku": "c"}',
        json.dumps({"sku": "s" * 10_000, "name": "n" * 100_000, "price": "1" * 1000}).encode(),
        '{"sku": "é", "name": "\u202e", "price": "١٢"}'.encode(),
        b"\xff\xfe\x00",
        b'{"name": "\\ud83d\\ude00 fine emoji", "description": "\\ud83d alone"}',
    ]
    paths = [
        ("POST", "/api/products"),
        ("PATCH", f"/api/products/{pid}"),
        ("PATCH", "/api/products/%FF"),
        ("DELETE", "/api/products/%00"),
        ("PUT", f"/api/products/{pid}"),
        ("GET", "/api/products/"),
        ("GET", f"/api/products/{pid}/image.svg?x=%00"),
    ]
    for method, path in paths:
        for raw in bodies:
            for headers in (ADMIN, USER, {}):
                resp = await client.request(method, path, data=raw, headers={**headers, **JSON})
                assert resp.status < 500, (method, path, raw[:40], await resp.text())
                if resp.status >= 400:
                    error = await resp.json()
                    assert_error(error, error["error"]["code"])
    for query in (
        "q=%FF%FE",
        "q=%ED%A0%80",
        "limit=%00",
        "offset=1e3",
        "q=%25%5F%5C",
        "limit=-0",
        "limit=%EF%BC%91%EF%BC%90",
    ):
        resp = await client.get(f"/api/products?{query}")
        assert resp.status in (200, 422), (query, await resp.text())


# -- the generated image -----------------------------------------------------------------


async def test_generated_image_is_a_deterministic_svg(client: Client, uid: str) -> None:
    name = 'Tom & Jerry\'s <script>alert("x")</script> mug'
    product = await create(client, f"img-{uid}", name=name)
    twin = await create(client, f"img2-{uid}", name=name)

    resp = await client.get(product["image_url"])
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    svg = await resp.text()
    root = ET.fromstring(svg)  # well-formed XML; the name is escaped, not markup
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert root.findtext(f"{ns}title") == name
    assert root.findtext(f"{ns}text") == "TJ"
    assert root.find(f".//{ns}script") is None
    assert "<script>" not in svg

    again = await client.get(product["image_url"])
    assert await again.text() == svg  # deterministic
    etag = resp.headers["ETag"]
    cached = await client.get(product["image_url"], headers={"If-None-Match": etag})
    assert cached.status == 304

    other = await (await client.get(twin["image_url"])).text()
    assert other != svg  # same name, other SKU: other colours

    await client.patch(f"/api/products/{product['id']}", json={"name": "Zed"}, headers=ADMIN)
    renamed = await (await client.get(product["image_url"])).text()
    assert ET.fromstring(renamed).findtext(f"{ns}text") == "Z"


# -- the read model ----------------------------------------------------------------------


async def test_a_rebuild_reproduces_the_read_model(
    client: Client, store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    a = await create(client, f"rb1-{uid}", name="Rebuild A", image_url="/x.png")
    b = await create(client, f"rb2-{uid}", name="Rebuild B")
    await client.patch(
        f"/api/products/{a['id']}", json={"price": "3.30", "name": "A2"}, headers=ADMIN
    )
    await client.patch(f"/api/products/{a['id']}", json={"image_url": None}, headers=ADMIN)
    await client.delete(f"/api/products/{b['id']}", headers=ADMIN)

    await client.app[RUNNERS]["products"].wait_for(await store.head())  # others' events too
    query = "SELECT * FROM products ORDER BY id"
    before = [dict(r) for r in await pool.fetch(query)]
    result = await rebuild(store, ProductsProjection())
    after = [dict(r) for r in await pool.fetch(query)]
    assert after == before
    assert result.rows == len(before)
    row = next(r for r in after if str(r["id"]) == a["id"])
    assert (row["name"], row["price"], row["version"]) == ("A2", Decimal("3.30"), 4)
    assert row["image_url"] == f"/api/products/{a['id']}/image.svg"

    # the service keeps serving from the swapped-in table, and keeps it current
    assert (await get(client, b["id"]))["active"] is False
    c = await create(client, f"rb3-{uid}")
    assert await get(client, c["id"]) == c


async def test_seed_creates_the_missing_demo_products_once(
    client: Client, store: PostgresEventStore, pool: Pool
) -> None:
    assert len(DEMO_PRODUCTS) >= 12
    skus = [p.sku for p in DEMO_PRODUCTS]
    present = await pool.fetchval("SELECT count(*) FROM product_skus WHERE sku = ANY($1)", skus)

    assert await seed_products(store, pool) == len(DEMO_PRODUCTS) - present
    assert await seed_products(store, pool) == 0
    assert await pool.fetchval(
        "SELECT count(*) FROM product_skus WHERE sku = ANY($1)", skus
    ) == len(skus)

    await client.app[RUNNERS]["products"].wait_for(await store.head())
    demo = DEMO_PRODUCTS[0]
    product = await get(client, str(demo_product_id(demo.sku)))
    assert (product["sku"], product["name"], product["price"], product["currency"]) == (
        demo.sku,
        demo.name,
        demo.price,
        "EUR",
    )
    [event] = await store.read_stream(f"product-{product['id']}")
    assert event.metadata.actor == "seed"


async def test_ready_once_the_projection_runs(client: Client) -> None:
    resp = await client.get("/ready")
    assert resp.status == 200, await resp.text()
    metrics = await (await client.get("/metrics")).text()
    assert 'projection_lag_events{projection="products",service="product"}' in metrics

"""Text Postgres cannot store (a NUL character, an unpaired surrogate) is the client's
mistake: a 422 naming the field, from every public input that reaches the database, never
a 500. Checked on the real services and the real database."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from microshop.app import make_app
from microshop.appkeys import POOL
from microshop.http import read_json
from services.auth.app import create_app as create_auth
from services.log.app import create_app as create_log
from services.order.app import create_app as create_order
from services.product.app import create_app as create_product
from tests.conftest import StackEnv
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

NUL = "a\x00b"
# JSON text as a client sends it: escapes, which json.loads turns into the characters
NUL_JSON = '"a\\u0000b"'
SURROGATE_JSON = '"a\\ud800b"'


async def refused(resp: Any, field: str) -> None:
    body = await resp.json()
    assert resp.status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert field in body["error"]["details"], body


@pytest.mark.parametrize("text", [NUL_JSON, SURROGATE_JSON])
async def test_login_and_register_with_unstorable_text_are_422(
    aiohttp_client: MakeClient, test_env: StackEnv, text: str
) -> None:
    auth = await aiohttp_client(create_auth(test_env.config()))
    for path in ("/api/auth/login", "/api/auth/register"):
        body = f'{{"email": {text}, "password": "correct horse"}}'
        resp = await auth.post(path, data=body, headers={"Content-Type": "application/json"})
        await refused(resp, "email")
        body = f'{{"email": "a@example.com", "password": {text}}}'
        resp = await auth.post(path, data=body, headers={"Content-Type": "application/json"})
        await refused(resp, "password")
    nested = '{"email": "a@example.com", "password": "x", "extra": {"k": ["ok", "a\\u0000"]}}'
    resp = await auth.post(
        "/api/auth/login", data=nested, headers={"Content-Type": "application/json"}
    )
    await refused(resp, "extra.k.1")


async def test_catalog_writes_and_search_with_unstorable_text_are_422(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    product = await aiohttp_client(create_product(test_env.config(), token_keys=TEST_KEYS))
    admin = {**bearer(admin_token()), "Content-Type": "application/json"}
    for text in (NUL_JSON, SURROGATE_JSON):
        body = f'{{"sku": "NUL-{uid}", "name": {text}, "price": "1.00"}}'
        await refused(await product.post("/api/products", data=body, headers=admin), "name")
    await refused(await product.get("/api/products", params={"q": NUL}), "q")
    created = await product.post(
        "/api/products", json={"sku": f"OK-{uid}", "name": "Fine", "price": "1.00"}, headers=admin
    )
    assert created.status == 201
    product_id = (await created.json())["id"]
    body = f'{{"description": {NUL_JSON}}}'
    resp = await product.patch(f"/api/products/{product_id}", data=body, headers=admin)
    await refused(resp, "description")


async def test_log_filters_with_a_nul_and_a_non_ascii_idempotency_key_are_422(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    logs = await aiohttp_client(create_log(test_env.config(), token_keys=TEST_KEYS))
    for name in ("service", "correlation_id", "q", "level"):
        resp = await logs.get("/api/logs", params={name: NUL}, headers=bearer(admin_token()))
        await refused(resp, name)
    order = await aiohttp_client(create_order(test_env.config(), token_keys=TEST_KEYS))
    resp = await order.post(
        "/api/orders", headers={**bearer(mint()), "Idempotency-Key": "cl\u00e9 \u00e0"}
    )
    await refused(resp, "Idempotency-Key")


async def test_text_no_parser_checked_is_still_a_422_from_the_database(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    """The kernel's last line: Postgres refusing a NUL is answered 422, never 500."""

    async def echo(request: web.Request) -> web.Response:
        value = request.query.get("v", "")  # deliberately unchecked
        return web.json_response({"v": await request.app[POOL].fetchval("SELECT $1::text", value)})

    async def jsonb(request: web.Request) -> web.Response:
        data = json.loads(await request.read())  # deliberately unchecked
        await request.app[POOL].fetchval("SELECT $1::jsonb", data)
        return web.json_response({"stored": True})

    async def checked(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    routes = [web.get("/echo", echo), web.post("/jsonb", jsonb), web.post("/checked", checked)]
    client = await aiohttp_client(make_app(test_env.config(), "nul-test", routes=routes))
    resp = await client.get("/echo", params={"v": NUL})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (422, "unstorable_text")
    resp = await client.post("/jsonb", data='{"a": "\\u0000"}')
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "unstorable_text")
    resp = await client.post("/checked", data='{"fine": "caf\\u00e9 \\ud83d\\ude00"}')
    assert resp.status == 200  # a paired surrogate is a character like any other
    assert (await resp.json()) == {"fine": "café 😀"}

"""The gateway in front of the real stack: routing, edge auth, headers, errors, docs."""

from __future__ import annotations

import asyncio
import io
import secrets

import aiohttp
import pytest

from services.gateway.routing import ROUTES
from tests.e2e.client import assert_error, signup
from tests.e2e.conftest import Stack
from tests.tokens import bearer, mint


async def test_auth_flow_through_the_gateway(http: aiohttp.ClientSession) -> None:
    user_id, token = await signup(http)
    resp = await http.get("/api/auth/me", headers=bearer(token))
    assert resp.status == 200
    assert (await resp.json())["id"] == user_id
    assert resp.headers["X-Request-ID"]
    jwks = await (await http.get("/.well-known/jwks.json")).json()
    assert jwks["keys"]


async def test_admin_from_the_environment_can_log_in(
    http: aiohttp.ClientSession, stack: Stack
) -> None:
    resp = await http.post(
        "/api/auth/login", json={"email": stack.admin_email, "password": stack.admin_password}
    )
    token = (await resp.json())["access_token"]
    me = await (await http.get("/api/auth/me", headers=bearer(token))).json()
    assert "admin" in me["roles"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("garbage"),
        bearer(mint()),  # signed by a key auth-service never issued
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "garbage", "foreign-key", "basic"],
)
async def test_protected_routes_refuse_bad_tokens_at_the_edge(
    http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    await assert_error(await http.get("/api/auth/me", headers=headers), 401)


async def test_correlation_id_is_adopted_and_echoed(http: aiohttp.ClientSession) -> None:
    resp = await http.get("/.well-known/jwks.json", headers={"X-Correlation-ID": "order-flow-42"})
    assert resp.headers["X-Correlation-ID"] == "order-flow-42"
    minted = await http.get("/.well-known/jwks.json")
    assert len(minted.headers["X-Correlation-ID"]) == 32


async def test_unknown_and_internal_paths_are_404_and_methods_405(
    http: aiohttp.ClientSession,
) -> None:
    await assert_error(await http.get("/api/nothing-here"), 404, "not_found")
    await assert_error(await http.get("/internal/debug/routes"), 404, "not_found")
    await assert_error(await http.get("/internal/settings"), 404, "not_found")
    resp = await http.delete("/api/auth/login")
    await assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


async def test_bodies_over_one_mebibyte_are_413(http: aiohttp.ClientSession) -> None:
    big = b'{"email": "' + b"a" * (1024 * 1024) + b'@example.com", "password": "12345678"}'
    resp = await http.post(
        "/api/auth/register", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    await assert_error(resp, 413, "payload_too_large")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"null",
        b"[]",
        b'"text"',
        b'{"email": 1, "password": 2}',
        b"\xff\xfe",
        b'{"email": "a@b.example", "password": 12345678901234567890123456789}',
    ],
)
async def test_client_mistakes_are_4xx_never_500(http: aiohttp.ClientSession, body: bytes) -> None:
    resp = await http.post(
        "/api/auth/register", data=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= resp.status < 500, await resp.text()


async def test_unicode_is_welcome(http: aiohttp.ClientSession) -> None:
    email = f"ünï-{secrets.token_hex(3)}@ñandú.example"
    resp = await http.post("/api/auth/register", json={"email": email, "password": "pässwörd✓"})
    assert resp.status == 201, await resp.text()
    login = await http.post("/api/auth/login", json={"email": email, "password": "pässwörd✓"})
    assert login.status == 200


async def test_cors_for_the_vite_dev_server(http: aiohttp.ClientSession) -> None:
    origin = "http://localhost:5173"
    preflight = await http.options(
        "/api/auth/me",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    denied = await http.get("/api/auth/me", headers={"Origin": origin})  # a 401, readable too
    assert denied.status == 401
    assert denied.headers["Access-Control-Allow-Origin"] == origin
    other = await http.get("/.well-known/jwks.json", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_openapi_document_and_docs_page(http: aiohttp.ClientSession) -> None:
    spec = await (await http.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/api/cart/items/{product_id}" in spec["paths"]
    register = spec["paths"]["/api/auth/register"]["post"]
    assert "requestBody" in register and "422" in register["responses"]
    assert spec["paths"]["/api/auth/me"]["get"]["security"] == [{"bearer": []}]
    assert "x-missing" not in spec  # every service behind the gateway sent its part
    documented = {(path, m.upper()) for path, ops in spec["paths"].items() for m in ops}
    assert documented == {(r.path, m) for r in ROUTES for m in r.methods}
    page = await http.get("/api/docs")
    assert page.status == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "/api/products/{id}" in await page.text()


async def test_health_and_ready(http: aiohttp.ClientSession) -> None:
    assert (await http.get("/health")).status == 200
    ready = await (await http.get("/ready")).json()
    assert ready["status"] == "ready"


async def test_many_concurrent_requests_are_served(http: aiohttp.ClientSession) -> None:
    responses = await asyncio.gather(*(http.get("/.well-known/jwks.json") for _ in range(50)))
    assert {r.status for r in responses} == {200}

"""What the gateway does to requests and responses, observed from an upstream that echoes.

The upstream here is a real HTTP server that reports what reached it (or misbehaves on
purpose): the only way to see the proxy's own work (header hygiene, timeouts, failures).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.gateway.app import create_app
from tests.conftest import StackEnv, closed_port_url, stand_in
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
INTERNAL_KEY = "gateway-test-key"


async def echo(request: web.Request) -> web.Response:
    if request.path.endswith("/slow"):
        await asyncio.sleep(5)
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": dict(request.headers),
            "body": body.decode(),
        },
        headers={
            "Connection": "close, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "5",
            "X-Upstream": "yes",
            "Retry-After": "3",
        },
    )


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with stand_in(app) as url:
        yield url


@pytest.fixture
async def gateway(aiohttp_client: MakeClient, test_env: StackEnv, upstream: str) -> Client:
    config = test_env.config(
        auth_url=upstream,
        product_url=upstream,
        cart_url=closed_port_url(),
        order_url=upstream,
        internal_api_key=INTERNAL_KEY,
        upstream_timeout_seconds=0.5,
    )
    return await aiohttp_client(create_app(config, token_keys=TEST_KEYS))


async def echoed(resp: Any) -> dict[str, Any]:
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def test_forwards_method_path_query_and_body(gateway: Client) -> None:
    resp = await gateway.get("/api/products?q=tea%20cup&limit=5")
    seen = await echoed(resp)
    assert seen["method"] == "GET"
    assert seen["path"] == "/api/products?q=tea%20cup&limit=5"
    posted = await echoed(
        await gateway.post(
            "/api/auth/login", data=b'{"a": 1}', headers={"Content-Type": "application/json"}
        )
    )
    assert posted["body"] == '{"a": 1}'


async def test_request_header_hygiene(gateway: Client) -> None:
    seen = (
        await echoed(
            await gateway.get(
                "/api/products",
                headers={
                    "X-Correlation-ID": "corr-7",
                    "Connection": "X-Drop-Me",
                    "X-Drop-Me": "1",
                    "Proxy-Authorization": "Basic eA==",
                    "X-Internal-Api-Key": "forged",
                    "X-Forwarded-For": "6.6.6.6",
                    "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                    "Accept-Language": "de",
                },
            )
        )
    )["headers"]
    lowered = {k.lower(): v for k, v in seen.items()}
    assert lowered["x-correlation-id"] == "corr-7"
    assert lowered["x-request-id"]
    assert lowered["traceparent"] == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert lowered["accept-language"] == "de"
    assert "x-drop-me" not in lowered and "proxy-authorization" not in lowered
    assert lowered["x-internal-api-key"] == INTERNAL_KEY  # the gateway's, never the client's
    assert lowered["x-forwarded-for"] == "127.0.0.1"  # the real peer, not the claim


async def test_a_malformed_traceparent_starts_a_new_trace(gateway: Client) -> None:
    resp = await gateway.get("/api/products", headers={"traceparent": "garbage"})
    seen = (await echoed(resp))["headers"]
    parts = {k.lower(): v for k, v in seen.items()}["traceparent"].split("-")
    assert parts[0] == "00" and len(parts[1]) == 32 and len(parts[2]) == 16


async def test_response_header_hygiene(gateway: Client) -> None:
    resp = await gateway.get("/api/products", headers={"X-Correlation-ID": "corr-8"})
    assert resp.headers["X-Upstream"] == "yes"
    assert resp.headers["Retry-After"] == "3"
    assert "X-Secret-Hop" not in resp.headers and "Keep-Alive" not in resp.headers
    assert resp.headers["X-Correlation-ID"] == "corr-8"


async def test_edge_authorization(gateway: Client) -> None:
    assert (await gateway.post("/api/products", json={})).status == 401
    assert (await gateway.post("/api/products", json={}, headers=bearer(mint()))).status == 403
    admin = await gateway.post("/api/products", json={}, headers=bearer(admin_token()))
    assert admin.status == 200  # reached the upstream, which decides for itself
    expired = await gateway.get("/api/orders", headers=bearer(mint(ttl=-10)))
    assert (await expired.json())["error"]["code"] == "token_expired"
    forged = await gateway.get("/api/orders", headers=bearer(mint(other_key=True)))
    assert forged.status == 401


async def test_upstream_down_is_502_and_slow_is_504(gateway: Client) -> None:
    down = await gateway.get("/api/cart", headers=bearer(mint()))
    assert down.status == 502
    assert (await down.json())["error"]["code"] == "upstream_unavailable"
    slow = await gateway.get("/api/products/slow")
    assert slow.status == 504
    assert (await slow.json())["error"]["code"] == "gateway_timeout"


async def test_rate_limit_per_client(
    aiohttp_client: MakeClient, test_env: StackEnv, upstream: str
) -> None:
    config = test_env.config(product_url=upstream, rate_limit_per_minute=5)
    client = await aiohttp_client(create_app(config, token_keys=TEST_KEYS))
    statuses = [(await client.get("/api/products")).status for _ in range(7)]
    assert statuses[:5] == [200] * 5
    limited = await client.get("/api/products")
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert (await client.get("/health")).status == 200  # probes are never limited

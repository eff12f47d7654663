"""What the gateway does to requests and responses, observed from an upstream that echoes.

The upstream here is a real HTTP server that reports what reached it (or misbehaves on
purpose): the only way to see the proxy's own work (header hygiene, timeouts, failures).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.gateway.app import create_app
from services.gateway.routing import Route
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
    assert "x-internal-api-key" not in lowered  # neither the client's nor the gateway's
    assert lowered["x-forwarded-for"] == "127.0.0.1"  # the real peer, not the claim


async def test_the_internal_key_goes_only_where_the_route_reads_the_address(
    gateway: Client,
) -> None:
    forged = {"X-Internal-Api-Key": "forged", "X-Forwarded-For": "6.6.6.6"}
    login = await echoed(await gateway.post("/api/auth/login", json={}, headers=forged))
    lowered = {k.lower(): v for k, v in login["headers"].items()}
    assert lowered["x-internal-api-key"] == INTERNAL_KEY  # the gateway's, never the client's
    assert lowered["x-forwarded-for"] == "127.0.0.1"
    for method, path in [
        ("POST", "/api/auth/register"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/api/products/42"),
        ("GET", "/api/orders"),
    ]:
        resp = await gateway.request(method, path, headers={**forged, **bearer(mint())})
        seen = {k.lower() for k in (await echoed(resp))["headers"]}
        assert "x-internal-api-key" not in seen, path


async def test_a_client_causation_id_is_never_forwarded(gateway: Client) -> None:
    resp = await gateway.get(
        "/api/orders", headers={**bearer(mint()), "X-Causation-ID": "someone-elses-event"}
    )
    assert "x-causation-id" not in {k.lower() for k in (await echoed(resp))["headers"]}


class Recorder:
    """A stand-in upstream that records every forwarded request's method and raw path
    (not the gateway's own poll of revoked logins, which is no client's request)."""

    OWN_CALLS = frozenset({"/internal/sessions/revoked"})

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.raw_path in self.OWN_CALLS:
            return web.json_response({"sessions": [], "window_seconds": 900})
        self.seen.append((request.method, request.raw_path))
        return web.json_response({"raw_path": request.raw_path})


@pytest.fixture
async def recorded(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> AsyncIterator[tuple[str, Recorder]]:
    """A gateway whose every upstream is one `Recorder`: its base URL and the recorder."""
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    async with stand_in(app) as url:
        upstreams = {f"{s}_url": url for s in ("auth", "product", "cart", "order", "log")}
        config = test_env.config(internal_api_key=INTERNAL_KEY, **upstreams)
        client = await aiohttp_client(create_app(config, token_keys=TEST_KEYS))
        yield str(client.make_url("")).rstrip("/"), recorder


async def raw_request(base: str, method: str, path: str) -> tuple[int, Any]:
    """`method path` sent exactly as written (no client-side normalisation of the path)."""
    async with aiohttp.ClientSession() as session:
        url = yarl.URL(base + path, encoded=True)
        async with session.request(method, url, headers=bearer(mint())) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    "segment",
    ["%2E%2E", "..", "%2e", ".", "a%2Fb", "a%5Cb", "%00", "%0A", "%252E%252E", "%ED%A0%80"],
)
async def test_a_parameter_that_would_change_the_path_is_404_and_reaches_nothing(
    recorded: tuple[str, Recorder], segment: str
) -> None:
    base, recorder = recorded
    status, body = await raw_request(base, "PUT", f"/api/cart/items/{segment}")
    assert status == 404, body
    assert body["error"]["code"] == "not_found"
    assert recorder.seen == []


async def test_the_forwarded_path_is_the_route_rebuilt_from_its_parameters(
    recorded: tuple[str, Recorder],
) -> None:
    base, recorder = recorded
    cases = {
        "/api/cart/items/abc-1": "/api/cart/items/abc-1",
        "/api/cart/items/x%20y": "/api/cart/items/x%20y",
        "/api/cart/items/caf%C3%A9": "/api/cart/items/caf%C3%A9",
        "/api/orders/%37%31/events?x=%2F..%00": "/api/orders/71/events?x=%2F..%00",
    }
    for sent, expected in cases.items():
        method = "PUT" if "cart" in sent else "GET"
        status, body = await raw_request(base, method, sent)
        assert status == 200, body
        assert body["raw_path"] == expected
    assert [path for _, path in recorder.seen] == list(cases.values())


def test_no_route_may_lead_to_an_internal_endpoint() -> None:
    with pytest.raises(ValueError, match="never routed"):
        Route("/internal/orders/{id}", "order", {"GET": "admin"})


async def test_the_gateways_demo_logs_are_for_admins_only(gateway: Client) -> None:
    assert (await gateway.post("/demo/logs?level=ERROR")).status == 401
    user = await gateway.post("/demo/logs?level=ERROR", headers=bearer(mint()))
    assert user.status == 403
    admin = await gateway.post("/demo/logs?level=ERROR", headers=bearer(admin_token()))
    assert admin.status == 202
    assert (await admin.json())["service"] == "gateway"


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

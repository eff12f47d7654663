"""The gateway's pages without the rest of the stack: sessions, CSRF, guards, and how a
page behaves when the services behind it are down.

The gateway is the real app on the real Postgres; tokens are minted with the test keys
(`token_keys=TEST_KEYS`), so a session cookie verifies exactly like auth-service's would.
The services behind it are closed ports, or a small log-service stand-in that reports
what reached it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from microshop.auth import ROLE_ADMIN, ROLE_USER
from services.gateway.app import create_app
from tests.conftest import StackEnv, closed_port_url, stand_in
from tests.pages import csrf_of, text_of
from tests.tokens import TEST_KEYS, admin_token, mint
from web.session import CSRF_COOKIE, SESSION_COOKIE, safe_next

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

ADMIN_PAGES = [
    "/admin",
    "/admin/events",
    "/admin/projections",
    "/admin/logs",
    "/admin/dead-letters",
    "/admin/events/stream/order-1",
    "/admin/events/00000000-0000-4000-8000-000000000000",
]


class LogService:
    """A stand-in for log-service's `GET /api/logs` that records the requests it got."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def logs(self, request: web.Request) -> web.Response:
        self.seen.append((request.headers.get("Authorization", ""), dict(request.query)))
        if request.query.get("level") == "NOPE":
            return web.json_response(
                {
                    "error": {
                        "code": "validation_error",
                        "message": "bad",
                        "details": {"level": ["Must be one of …"]},
                    }
                },
                status=422,
            )
        return web.json_response(
            {
                "items": [
                    {
                        "id": 2,
                        "ts": "2024-05-01T12:30:05+00:00",
                        "service": "order",
                        "level": "ERROR",
                        "message": "payment <b>failed</b>",
                        "correlation_id": "corr-42",
                        "request_id": "req-7",
                    },
                    {
                        "id": 1,
                        "ts": "2024-05-01T12:30:00+00:00",
                        "service": "gateway",
                        "level": "INFO",
                        "message": "POST /api/orders 201",
                        "correlation_id": "corr-42",
                    },
                ]
            }
        )


@pytest.fixture
async def log_service() -> AsyncIterator[tuple[LogService, str]]:
    service = LogService()
    app = web.Application()
    app.router.add_get("/api/logs", service.logs)
    async with stand_in(app) as url:
        yield service, url


def config_for(test_env: StackEnv, **urls: str) -> Any:
    down = closed_port_url()
    services = ("auth", "product", "cart", "order", "payment", "log")
    return test_env.config(
        internal_api_key="pages-test-key",
        upstream_timeout_seconds=2.0,
        **{f"{s}_url": urls.get(s, down) for s in services},
    )


@pytest.fixture
async def gateway(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    return await aiohttp_client(create_app(config_for(test_env), token_keys=TEST_KEYS))


def log_in(client: Client, token: str) -> None:
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})


async def test_pages_are_html_and_static_files_are_served(gateway: Client) -> None:
    resp = await gateway.get("/login")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert '<form method="post" action="/login"' in page
    assert resp.headers["Cache-Control"] == "no-store"
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    css = await gateway.get("/static/style.css")
    assert css.status == 200
    assert "font" in await css.text()


async def test_shop_pages_say_when_the_catalog_is_down(gateway: Client) -> None:
    for path in ("/", "/?q=mug&page=2", f"/products/{'1' * 8}-1111-4111-8111-{'1' * 12}"):
        resp = await gateway.get(path)
        assert resp.status == 502, path
        assert resp.content_type == "text/html"
        assert "The catalog is unavailable" in text_of(await resp.text())


async def test_a_product_id_that_is_no_uuid_is_a_404_page(gateway: Client) -> None:
    resp = await gateway.get("/products/not-a-product")
    assert resp.status == 404
    assert "No such product" in text_of(await resp.text())


async def test_admin_pages_send_visitors_to_the_login_page(gateway: Client) -> None:
    for path in ADMIN_PAGES:
        resp = await gateway.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"] == f"/login?next={path}"
    orders = await gateway.get(
        "/orders/00000000-0000-4000-8000-000000000000", allow_redirects=False
    )
    assert orders.status == 302
    assert orders.headers["Location"].startswith("/login?next=/orders/")


async def test_admin_pages_refuse_users_without_the_admin_role(gateway: Client) -> None:
    log_in(gateway, mint())
    for path in ADMIN_PAGES:
        resp = await gateway.get(path, allow_redirects=False)
        assert resp.status == 403, path
        assert "Admins only" in text_of(await resp.text())


ADMIN = (ROLE_USER, ROLE_ADMIN)


@pytest.mark.parametrize(
    "token",
    [mint(roles=ADMIN, ttl=-30), mint(roles=ADMIN, other_key=True), "garbage"],
    ids=["expired", "forged", "junk"],
)
async def test_a_cookie_that_does_not_verify_is_no_session(gateway: Client, token: str) -> None:
    log_in(gateway, token)  # an admin's token, but expired or forged
    resp = await gateway.get("/admin/events", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/login?next=/admin/events"
    page = await gateway.get("/login")
    assert page.cookies[SESSION_COOKIE].value == ""  # the bad cookie is dropped


async def test_admins_see_the_operator_pages(gateway: Client) -> None:
    log_in(gateway, admin_token())
    for path in ("/admin/events", "/admin/projections", "/admin/dead-letters"):
        resp = await gateway.get(path)
        assert resp.status == 200, (path, await resp.text())
        assert "Log out" in await resp.text()
    home = await gateway.get("/admin", allow_redirects=False)
    assert home.headers["Location"] == "/admin/events"


async def test_the_logs_page_says_when_log_service_is_down(gateway: Client) -> None:
    log_in(gateway, admin_token())
    resp = await gateway.get("/admin/logs?correlation_id=corr-1&level=ERROR")
    assert resp.status == 502
    page = text_of(await resp.text())
    assert "log-service unavailable" in page
    assert "cannot be reached" in page
    assert 'value="corr-1"' in await resp.text()  # the form keeps what was asked


async def test_the_logs_page_searches_log_service_with_the_admins_token(
    aiohttp_client: MakeClient, test_env: StackEnv, log_service: tuple[LogService, str]
) -> None:
    service, url = log_service
    client = await aiohttp_client(create_app(config_for(test_env, log=url), token_keys=TEST_KEYS))
    token = admin_token()
    log_in(client, token)
    resp = await client.get(
        "/admin/logs",
        params={
            "service": "order",
            "level": "error",
            "correlation_id": "corr-42",
            "since": "2024-05-01T12:00",
            "until": "",
            "limit": "50",
        },
    )
    assert resp.status == 200, await resp.text()
    authorization, query = service.seen[-1]
    assert authorization == f"Bearer {token}"
    assert query == {
        "service": "order",
        "level": "ERROR",
        "correlation_id": "corr-42",
        "since": "2024-05-01T12:00:00+00:00",
        "limit": "50",
    }
    page = await resp.text()
    assert "payment &lt;b&gt;failed&lt;/b&gt;" in page  # autoescaped
    assert 'href="/admin/events?correlation_id=corr-42"' in page  # logs → events
    assert "2024-05-01 12:30:05 UTC" in page
    refused = await client.get("/admin/logs", params={"level": "NOPE"})
    assert refused.status == 422  # checked here first: log-service was not asked
    assert len(service.seen) == 1
    bad_id = await client.get("/admin/logs", params={"correlation_id": "no spaces please"})
    assert bad_id.status == 422
    assert "Letters, digits" in await bad_id.text()


async def test_state_changing_forms_need_the_csrf_token(gateway: Client) -> None:
    log_in(gateway, admin_token())
    page = await (await gateway.get("/admin/projections")).text()
    token = csrf_of(page)
    assert gateway.session.cookie_jar.filter_cookies(gateway.make_url("/"))[CSRF_COOKIE]
    posts = [
        ("/logout", {}),
        ("/admin/projections/streams/rebuild", {}),
        ("/admin/dead-letters/order-payments/replay", {}),
        ("/login", {"email": "a@b.c", "password": "whatever1"}),
    ]
    for path, form in posts:
        missing = await gateway.post(path, data=form, allow_redirects=False)
        assert missing.status == 403, path
        assert "Form expired" in text_of(await missing.text())
        wrong = await gateway.post(
            path, data={**form, "csrf_token": token[:-2] + "xx"}, allow_redirects=False
        )
        assert wrong.status == 403, path
    cross_site = await gateway.post(
        "/logout",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert cross_site.status == 403
    assert "Cross-site" in await cross_site.text()
    # a token is bound to the browser's nonce: another browser's token does not pass
    other = await gateway.post(
        "/logout",
        data={"csrf_token": token},
        cookies={CSRF_COOKIE: "x" * 43},
        allow_redirects=False,
    )
    assert other.status == 403
    ok = await gateway.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert ok.status == 303
    assert ok.headers["Location"] == "/"
    assert ok.cookies[SESSION_COOKIE].value == ""


async def test_logging_in_says_when_auth_service_is_down(gateway: Client) -> None:
    token = csrf_of(await (await gateway.get("/login")).text())
    resp = await gateway.post(
        "/login", data={"csrf_token": token, "email": "a@b.c", "password": "x" * 10}
    )
    assert resp.status == 502
    assert "The sign-in service is unavailable" in text_of(await resp.text())


def test_next_is_only_ever_a_path_on_this_site() -> None:
    assert safe_next("/admin/events?category=order") == "/admin/events?category=order"
    for bad in (
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:1",
        "evil",
        "/a\nb",
        "",
        None,
    ):
        assert safe_next(bad) == "/", bad


async def test_operator_pages_say_when_the_event_store_is_down(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    nowhere = closed_port_url().removeprefix("http://")
    down = dataclasses.replace(
        config_for(test_env), database_url=f"postgresql://postgres@{nowhere}/x"
    )
    client = await aiohttp_client(create_app(down, token_keys=TEST_KEYS))
    log_in(client, admin_token())
    for path in ("/admin/events", "/admin/projections", "/admin/events/stream/order-1"):
        resp = await client.get(path)
        assert resp.status == 503, path
        assert "Event store unavailable" in text_of(await resp.text())
    shop = await client.get("/login")
    assert shop.status == 200  # the rest of the gateway does not need the database
    ready = await client.get("/ready")
    assert "projection:streams" not in await ready.text()

"""Logins at the edge: the gateway in front of the real auth-service, on the real Postgres.

Through the API: refresh and logout are routed, and a revoked login's access tokens are
refused at the gateway within a poll. Through the pages: the refresh token in its own
HttpOnly cookie, the session refreshed on the server when the access cookie has expired,
one refresh for requests that arrive together, and logout revoking the login.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from services.auth.app import create_app as create_auth
from services.gateway.app import create_app as create_gateway
from tests.conftest import StackEnv, closed_port_url, stand_in
from tests.pages import csrf_of, text_of
from tests.tokens import bearer, mint
from web.session import REFRESH_COOKIE, SESSION_COOKIE

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
KEY = "edge-test-key"
PASSWORD = "correct horse"


def gateway_config(test_env: StackEnv, auth_url: str) -> Any:
    down = closed_port_url()
    return test_env.config(
        internal_api_key=KEY,
        upstream_timeout_seconds=2.0,
        token_revocation_poll_seconds=0.1,
        auth_url=auth_url,
        **{f"{s}_url": down for s in ("product", "cart", "order", "payment", "log")},
    )


@pytest.fixture
async def auth_url(test_env: StackEnv) -> AsyncIterator[str]:
    async with stand_in(create_auth(test_env.config(internal_api_key=KEY))) as url:
        yield url


@pytest.fixture
async def gateway(aiohttp_client: MakeClient, test_env: StackEnv, auth_url: str) -> Client:
    return await aiohttp_client(create_gateway(gateway_config(test_env, auth_url)))


async def account(gateway: Client) -> str:
    email = f"edge-{secrets.token_hex(4)}@example.com"
    resp = await gateway.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    return email


async def api_login(gateway: Client, email: str) -> dict[str, Any]:
    resp = await gateway.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def refused_at_the_edge(gateway: Client, access_token: str) -> dict[str, Any]:
    """The error the gateway answers once it learned the login ended (within seconds)."""
    async with asyncio.timeout(5):
        while True:
            resp = await gateway.get("/api/auth/me", headers=bearer(access_token))
            if resp.status == 401:
                error: dict[str, Any] = (await resp.json())["error"]
                return error
            assert resp.status == 200
            await asyncio.sleep(0.05)


async def test_logout_through_the_gateway_ends_the_access_token_at_the_edge(
    gateway: Client, auth_url: str
) -> None:
    email = await account(gateway)
    tokens = await api_login(gateway, email)
    other = await api_login(gateway, email)  # the same person's other login
    resp = await gateway.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200, await resp.text()
    rotated = await resp.json()
    me = await gateway.get("/api/auth/me", headers=bearer(rotated["access_token"]))
    assert (await me.json())["email"] == email

    out = await gateway.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status == 204
    for token in (tokens["access_token"], rotated["access_token"]):  # every one of that login
        error = await refused_at_the_edge(gateway, token)
        assert error["code"] == "token_revoked"
    still = await gateway.get("/api/auth/me", headers=bearer(other["access_token"]))
    assert still.status == 200

    # services behind the gateway do not poll: there the token lives until it expires
    async with aiohttp.ClientSession() as direct:
        behind = await direct.get(f"{auth_url}/api/auth/me", headers=bearer(tokens["access_token"]))
        assert behind.status == 200


async def test_a_reused_refresh_token_ends_the_thiefs_and_the_owners_access_tokens(
    gateway: Client,
) -> None:
    tokens = await api_login(gateway, await account(gateway))
    owner = await (
        await gateway.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    thief = await gateway.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert thief.status == 401
    assert (await thief.json())["error"]["code"] == "refresh_token_reused"
    assert (await refused_at_the_edge(gateway, owner["access_token"]))["code"] == "token_revoked"


# -- the pages -----------------------------------------------------------------------------


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The Set-Cookie headers of an answer, by name (the morsels)."""
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        jar.load(header)
    return dict(jar)


async def page_login(gateway: Client, email: str) -> aiohttp.ClientResponse:
    token = csrf_of(await (await gateway.get("/login")).text())
    resp = await gateway.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    return resp


def forget_access_cookie(client: Client) -> str:
    """What the browser does when the access cookie's max-age ran out; the refresh token."""
    jar = client.session.cookie_jar
    cookies = {c.key: c.value for c in jar}
    jar.clear(lambda morsel: morsel.key == SESSION_COOKIE)
    return cookies[REFRESH_COOKIE]


async def logged_in_as(client: Client, **options: Any) -> tuple[str | None, Any]:
    resp = await client.get("/login", **options)
    assert resp.status == 200
    found = re.search(r"You are logged in as (\S+@\S+?)\s*\.\s", text_of(await resp.text()))
    return (found.group(1) if found else None), resp


async def test_the_login_form_sets_both_token_cookies_http_only_and_strict(
    gateway: Client,
) -> None:
    resp = await page_login(gateway, await account(gateway))
    cookies = set_cookies(resp)
    for name, lives in ((SESSION_COOKIE, 900), (REFRESH_COOKIE, 7 * 86400)):
        morsel = cookies[name]
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
        assert int(morsel["max-age"]) == lives
    assert cookies[SESSION_COOKIE].value != cookies[REFRESH_COOKIE].value


async def test_an_expired_access_cookie_is_refreshed_on_the_server(gateway: Client) -> None:
    email = await account(gateway)
    await page_login(gateway, email)
    old_refresh = forget_access_cookie(gateway)

    who, resp = await logged_in_as(gateway)
    assert who == email
    renewed = set_cookies(resp)
    assert renewed[SESSION_COOKIE].value and int(renewed[SESSION_COOKIE]["max-age"]) == 900
    assert renewed[REFRESH_COOKIE].value not in ("", old_refresh)  # rotated

    again, resp = await logged_in_as(gateway)  # the new cookies: no further refresh
    assert again == email and not set_cookies(resp)

    # an access cookie that does not verify (expired, or not auth-service's) is refreshed too
    forget_access_cookie(gateway)
    gateway.session.cookie_jar.update_cookies({SESSION_COOKIE: mint(ttl=-60)})
    who, resp = await logged_in_as(gateway)
    assert who == email and set_cookies(resp)[REFRESH_COOKIE].value


async def test_requests_arriving_together_refresh_once_and_keep_the_login(
    gateway: Client,
) -> None:
    email = await account(gateway)
    await page_login(gateway, email)
    old_refresh = forget_access_cookie(gateway)
    gateway.session.cookie_jar.clear()

    answers = await asyncio.gather(
        *(logged_in_as(gateway, cookies={REFRESH_COOKIE: old_refresh}) for _ in range(4))
    )
    assert [who for who, _ in answers] == [email] * 4
    new_tokens = {set_cookies(resp)[REFRESH_COOKIE].value for _, resp in answers}
    assert len(new_tokens) == 1  # one refresh, its pair handed to all four
    # the login was not taken for reuse: the new refresh token works
    resp = await gateway.post("/api/auth/refresh", json={"refresh_token": new_tokens.pop()})
    assert resp.status == 200


async def test_a_refused_refresh_logs_the_browser_out(gateway: Client) -> None:
    await page_login(gateway, await account(gateway))
    old_refresh = forget_access_cookie(gateway)
    out = await gateway.post("/api/auth/logout", json={"refresh_token": old_refresh})
    assert out.status == 204  # the login ended elsewhere

    who, resp = await logged_in_as(gateway)
    assert who is None
    dropped = set_cookies(resp)
    assert dropped[REFRESH_COOKIE].value == "" and dropped[SESSION_COOKIE].value == ""
    orders = await gateway.get("/orders", allow_redirects=False)
    assert orders.status == 302 and orders.headers["Location"] == "/login?next=/orders"


async def test_logging_out_of_the_pages_revokes_the_login(gateway: Client) -> None:
    email = await account(gateway)
    await page_login(gateway, email)
    cookies = {c.key: c.value for c in gateway.session.cookie_jar}
    access, refresh = cookies[SESSION_COOKIE], cookies[REFRESH_COOKIE]

    form = csrf_of(await (await gateway.get("/login")).text())
    resp = await gateway.post("/logout", data={"csrf_token": form}, allow_redirects=False)
    assert resp.status == 303
    dropped = set_cookies(resp)
    assert dropped[SESSION_COOKIE].value == "" and dropped[REFRESH_COOKIE].value == ""

    gone = await gateway.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert (await gone.json())["error"]["code"] == "invalid_refresh_token"
    assert (await refused_at_the_edge(gateway, access))["code"] == "token_revoked"
    # a copy of the old access cookie opens no page either
    who, _ = await logged_in_as(gateway, cookies={SESSION_COOKIE: access})
    assert who is None


async def test_while_auth_service_is_down_the_refresh_cookie_is_kept(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    client = await aiohttp_client(create_gateway(gateway_config(test_env, closed_port_url())))
    client.session.cookie_jar.update_cookies({REFRESH_COOKIE: "kept-for-later"})
    who, resp = await logged_in_as(client)
    assert who is None
    assert REFRESH_COOKIE not in set_cookies(resp)

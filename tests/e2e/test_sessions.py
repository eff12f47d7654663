"""Logins on the real stack, through the gateway: a stranger's failed logins from another
address never lock the owner out, refresh tokens rotate, and logging out ends the access
token at the edge within seconds."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import aiohttp

from tests.e2e.client import login
from tests.e2e.conftest import Stack
from tests.e2e.test_pages import browser, log_in
from tests.tokens import bearer

PASSWORD = "correct horse"


async def owner_account(http: aiohttp.ClientSession) -> str:
    email = f"owner-{secrets.token_hex(4)}@example.com"
    resp = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    return email


async def test_a_strangers_failures_from_another_address_do_not_lock_the_owner_out(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    owner = await owner_account(http)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))  # the stranger's address
    async with aiohttp.ClientSession(base_url=stack.url, connector=connector) as stranger:
        answers: Counter[int] = Counter()
        for n in range(20):
            resp = await stranger.post(
                "/api/auth/login", json={"email": owner, "password": f"guess-{n}"}
            )
            answers[resp.status] += 1
        assert answers == {401: 5, 429: 15}

        # the owner, from 127.0.0.1: through the API and through the login page
        assert (await login(http, owner, PASSWORD))["token_type"] == "Bearer"
        async with browser(stack) as page:
            assert (await log_in(page, owner, PASSWORD)).status == 303

        still = await stranger.post("/api/auth/login", json={"email": owner, "password": PASSWORD})
        assert still.status == 429
        assert (await still.json())["error"]["code"] == "login_throttled"


async def test_refresh_rotates_and_logout_ends_the_access_token_at_the_gateway(
    http: aiohttp.ClientSession,
) -> None:
    tokens = await login(http, await owner_account(http), PASSWORD)
    assert tokens["expires_in"] == 900
    resp = await http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200, await resp.text()
    rotated = await resp.json()
    assert (await http.get("/api/orders", headers=bearer(rotated["access_token"]))).status == 200

    out = await http.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status == 204
    async with asyncio.timeout(15):  # the gateway polls auth-service every 2 s
        while True:
            resp = await http.get("/api/orders", headers=bearer(rotated["access_token"]))
            if resp.status == 401:
                break
            assert resp.status == 200
            await asyncio.sleep(0.2)
    assert (await resp.json())["error"]["code"] == "token_revoked"
    again = await http.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status == 401

"""What the e2e tests do as a client of the gateway: sign up, check error shapes, shop."""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp

from tests.tokens import bearer

if TYPE_CHECKING:
    from .conftest import Stack

__all__ = ["FINAL", "Shop", "assert_error", "login", "signup"]

FINAL = {"PAID", "PAYMENT_FAILED", "CANCELLED"}


async def assert_error(resp: aiohttp.ClientResponse, status: int, code: str | None = None) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code
    return body


async def login(http: aiohttp.ClientSession, email: str, password: str) -> dict[str, Any]:
    """Login's answer: `access_token` (15 minutes), `refresh_token` and their lifetimes."""
    resp = await http.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def signup(http: aiohttp.ClientSession) -> tuple[str, str]:
    """A new account's (id, access token)."""
    email, password = f"u-{secrets.token_hex(4)}@example.com", "pass-" + secrets.token_hex(4)
    resp = await http.post("/api/auth/register", json={"email": email, "password": password})
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    return user_id, (await login(http, email, password))["access_token"]


class Shop:
    def __init__(self, http: aiohttp.ClientSession, stack: Stack, product_id: str) -> None:
        self.http, self.stack, self.product_id = http, stack, product_id

    async def payments(self, **settings: Any) -> None:
        async with aiohttp.ClientSession() as session:
            resp = await session.put(
                f"{self.stack.service_url('payment')}/internal/settings",
                json=settings,
                headers={"X-Internal-Api-Key": self.stack.internal_api_key},
            )
            assert resp.status == 200, await resp.text()

    async def customer(self) -> dict[str, str]:
        _, token = await signup(self.http)
        return bearer(token)

    async def order(
        self, me: dict[str, str], quantity: int = 2, headers: dict[str, str] | None = None
    ) -> Any:
        line = {"product_id": self.product_id, "quantity": quantity}
        await self.http.post("/api/cart/items", json=line, headers=me)
        resp = await self.http.post("/api/orders", headers={**me, **(headers or {})})
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def until_final(self, me: dict[str, str], order_id: str, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                order = await (await self.http.get(f"/api/orders/{order_id}", headers=me)).json()
                if order["status"] in FINAL:
                    return order
                await asyncio.sleep(0.05)

    async def timeline(self, me: dict[str, str], order_id: str) -> list[dict[str, Any]]:
        resp = await self.http.get(f"/api/orders/{order_id}/events", headers=me)
        items: list[dict[str, Any]] = (await resp.json())["items"]
        return items

"""Forgetting a customer on the real stack, through the gateway.

A customer registers, shops until an order is PAID, exports their data (email and orders
decrypted), and is forgotten by an admin. Afterwards their email is in no row of the
database (a `pg_dump --data-only`, in any case), no log line of any service and no message
the relay published; `UserForgotten` is in the log; their old token reaches nothing; and
every projection rebuilds to the row counts it had.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import aiormq
import asyncpg

from microshop.topology import load_projections
from tests.conftest import StackEnv
from tests.e2e.client import Shop, assert_error
from tests.e2e.conftest import Stack
from tests.e2e.test_poison import cli
from tests.tokens import bearer


async def pg_dump(dsn: str) -> str:
    """Every row of the database, as `pg_dump --data-only` writes them."""
    process = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", "--dbname", dsn, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


async def row_counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: int(await conn.fetchval(f'SELECT count(*) FROM "{projection.table}"'))
            for name, projection in load_projections().items()
        }
    finally:
        await conn.close()


async def settled_counts(dsn: str) -> dict[str, int]:
    """The read models' row counts once nothing is appended any more (earlier tests'
    payments may still be retrying: the log is still for two seconds)."""
    conn = await asyncpg.connect(dsn)
    try:
        head = await conn.fetchval("SELECT max(global_position) FROM events")
        async with asyncio.timeout(60):
            while True:
                await asyncio.sleep(2)
                again = await conn.fetchval("SELECT max(global_position) FROM events")
                if again == head:
                    break
                head = again
    finally:
        await conn.close()
    counts = await row_counts(dsn)
    async with asyncio.timeout(30):
        while True:
            await asyncio.sleep(1)
            if (again_counts := await row_counts(dsn)) == counts:
                return counts
            counts = again_counts


async def until_refused(http: aiohttp.ClientSession, path: str, me: dict[str, str]) -> float:
    """Seconds until `path` answers 401 to the forgotten customer's token."""
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        while (await http.get(path, headers=me)).status != 401:
            await asyncio.sleep(0.05)
    return asyncio.get_running_loop().time() - started


async def test_a_forgotten_customer_leaves_no_email_behind(
    http: aiohttp.ClientSession, stack: Stack, test_env: StackEnv, admin: dict[str, str], shop: Shop
) -> None:
    namespace = stack.env["MICROSHOP_NAMESPACE"]
    async with aiormq.connect(test_env.amqp_url) as broker:
        channel = await broker.channel()
        tap = str((await channel.queue_declare("", exclusive=True)).queue)
        await channel.queue_bind(tap, f"{namespace}.events", routing_key="user.#")

        email, password = f"Forget.Me.{secrets.token_hex(4)}@Example.COM", "correct horse"
        resp = await http.post("/api/auth/register", json={"email": email, "password": password})
        assert resp.status == 201, await resp.text()
        user_id = (await resp.json())["id"]
        login = await http.post("/api/auth/login", json={"email": email, "password": password})
        me = bearer((await login.json())["access_token"])
        order = await shop.order(me, 2)
        assert (await shop.until_final(me, order["id"]))["status"] == "PAID"

        exported = await http.get("/api/auth/me/export", headers=me)
        assert exported.status == 200, await exported.text()
        mine: Any = await exported.json()
        assert mine["account"]["id"] == user_id
        assert mine["account"]["email"] == email.lower()
        registered = [e for e in mine["events"] if e["type"] == "UserRegistered"]
        assert [e["data"]["email"] for e in registered] == [email.lower()]  # decrypted
        assert [o["id"] for o in mine["orders"]] == [order["id"]]
        assert mine["orders"][0]["status"] == "PAID" and "items" in mine["cart"]
        other = await shop.customer()
        theirs: Any = await (await http.get("/api/auth/me/export", headers=other)).json()
        assert theirs["orders"] == [] and theirs["account"]["id"] != user_id

        await assert_error(await http.delete(f"/api/admin/users/{user_id}", headers=me), 403)
        forgotten = await http.delete(f"/api/admin/users/{user_id}", headers=admin)
        assert forgotten.status == 200, await forgotten.text()
        assert (await forgotten.json())["key_destroyed"] is True
        again = await http.delete(f"/api/admin/users/{user_id}", headers=admin)
        await assert_error(again, 409, "already_forgotten")

        # the old token reaches none of their data, at any service (within a second or so)
        for path in ("/api/orders", f"/api/orders/{order['id']}", "/api/cart"):
            assert await until_refused(http, path, me) < 5
        for path in ("/api/auth/me", "/api/auth/me/export"):
            await assert_error(await http.get(path, headers=me), 401)
        relogin = await http.post("/api/auth/login", json={"email": email, "password": password})
        await assert_error(relogin, 401, "invalid_credentials")

        conn = await asyncpg.connect(test_env.database_url)
        try:
            kinds = await conn.fetch(
                "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version",
                f"user-{user_id}",
            )
            assert [k[0] for k in kinds] == ["UserRegistered", "UserForgotten"]
        finally:
            await conn.close()

        # what the relay published about users: their events, sealed
        published: list[bytes] = []
        async with asyncio.timeout(15):
            while len([b for b in published if user_id.encode() in b]) < 2:
                message = await channel.basic_get(tap, no_ack=True)
                if message.body:
                    published.append(message.body)
                else:
                    await asyncio.sleep(0.1)
    assert not [b for b in published if email.lower().encode() in b.lower()]

    before = await settled_counts(test_env.database_url)
    for name in before:
        rebuilt = cli(stack.env, "projections", "rebuild", name)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert await row_counts(test_env.database_url) == before

    dump = await pg_dump(test_env.database_url)
    assert f"user-{user_id}" in dump and "UserForgotten" in dump  # the dump has their events
    assert email.lower() not in dump.lower()  # but not their email, in any case
    assert email.lower() not in stack.log.read_text().lower()  # nor any service's log line

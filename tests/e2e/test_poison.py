"""One bad event on the real stack: a v99 `OrderPlaced` (newer than the code) in the log.

The `orders` read model parks it and goes on, order-service stays ready, both consumers of
`OrderPlaced` park their message instead of misreading it, and a real order placed right
after reaches PAID and shows in the customer's list. The CLI names the bad event.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import aiohttp
import asyncpg

from eventstore import PostgresEventStore, create_pool
from microshop.config import Config
from tests.conftest import StackEnv
from tests.e2e.client import Shop
from tests.e2e.conftest import Stack
from web.admin.resources import consumers_for

V99 = '{"order_id": "%s", "user_id": "someone", "lines": [], "total": "1.00", "currency": "EUR"}'


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_poison_event_parks_and_the_shop_goes_on(
    shop: Shop, stack: Stack, test_env: StackEnv
) -> None:
    poison_order, poison = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(test_env.database_url)
    try:
        await conn.execute(
            """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                                   schema_version, data)
               VALUES ($1, 1, $2, 'OrderPlaced', 99, $3::jsonb)""",
            f"order-{poison_order}",
            poison,
            V99 % poison_order,
        )
    finally:
        await conn.close()

    me = await shop.customer()
    order = await shop.order(me, 1)
    paid = await shop.until_final(me, order["id"])
    assert paid["status"] == "PAID"
    mine = await (await shop.http.get("/api/orders", headers=me)).json()
    assert [o["id"] for o in mine["items"]] == [order["id"]]
    async with aiohttp.ClientSession() as probe:
        ready = await probe.get(f"{stack.service_url('order')}/ready")
        assert ready.status == 200, await ready.text()

    errors = cli(stack.env, "projections", "errors", "orders")
    assert errors.returncode == 0, errors.stderr
    assert f"event {poison}" in errors.stdout and "newer than this code" in errors.stdout
    status = cli(stack.env, "projections", "status")
    assert "events are parked" in status.stdout and "alive" in status.stdout

    pool = await create_pool(test_env.database_url, max_size=2)
    try:
        queues = consumers_for(Config.from_env(stack.env), PostgresEventStore(pool))
        async with asyncio.timeout(30):  # both consumers park the v99 instead of misreading it
            for consumer in queues.values():
                while not (
                    found := [p for p in await consumer.parked() if p.event_id == str(poison)]
                ):
                    await asyncio.sleep(0.5)
                assert "OrderPlaced v99 is not a version" in found[0].error, found[0].error
    finally:
        await pool.close()

    check = cli(stack.env, "events", "check")
    assert check.returncode == 1
    assert f"event {poison}" in check.stdout and "Traceback" not in check.stderr

    retried = cli(stack.env, "projections", "retry", "orders", "--event-id", str(poison))
    assert retried.returncode == 1  # still newer than this code: it stays parked
    assert "still failing" in retried.stdout

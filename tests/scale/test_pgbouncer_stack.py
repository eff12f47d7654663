"""The whole stack behind PgBouncer in transaction mode: pools through it, each process's
session connection (LISTEN, leader locks) straight to Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import StackEnv
from tests.e2e.client import Shop
from tests.e2e.conftest import Stack, running_stack
from tests.pgbouncer import PgBouncer, running_pgbouncer, through
from tests.tokens import bearer

from .conftest import until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with running_pgbouncer(pool_size=20) as running:
        yield running


@pytest.fixture(scope="module")
def bounced(
    bouncer: PgBouncer, test_env: StackEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        test_env,
        tmp_path_factory.mktemp("pgbouncer-stack"),
        DATABASE_URL=through(test_env.database_url, bouncer.port),
        DATABASE_DIRECT_URL=test_env.database_url,
        DB_STATEMENT_CACHE_SIZE="0",
        RATE_LIMIT_PER_MINUTE="60000",
    ) as running:
        yield running


async def test_an_order_is_paid_with_the_pools_behind_pgbouncer(bounced: Stack) -> None:
    assert "pools go through PgBouncer" in bounced.log.read_text()
    async with aiohttp.ClientSession(base_url=bounced.url) as http:
        resp = await http.post(
            "/api/auth/login",
            json={"email": bounced.admin_email, "password": bounced.admin_password},
        )
        admin = bearer((await resp.json())["access_token"])
        body = {"sku": "PGB-1", "name": "Bounced mug", "price": "3.00"}
        resp = await http.post("/api/products", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        shop = Shop(http, bounced, (await resp.json())["id"])
        me = await shop.customer()
        order = await shop.order(me)
        assert (await shop.until_final(me, order["id"]))["status"] == "PAID"
        assert len(await shop.timeline(me, order["id"])) >= 2


async def test_the_pools_really_go_through_pgbouncer(bounced: Stack, bouncer: PgBouncer) -> None:
    """Without PgBouncer the pools have no database, and /ready says so until it is back."""
    ready = f"{bounced.service_url('order')}/ready"

    async def answers(status: int) -> bool:
        async with aiohttp.ClientSession() as session, session.get(ready) as resp:
            return resp.status == status

    assert await answers(200)
    bouncer.stop()
    try:
        await until(lambda: answers(503), timeout=30)
    finally:
        bouncer.start()
    await until(lambda: answers(200), timeout=30)

"""The whole stack with two replicas of every service (`microshop up --replicas 2`).

Its own package, so that the one-replica stack of tests/e2e is gone before this one starts.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from microshop.config import replica_port
from tests.conftest import StackEnv
from tests.e2e.client import Shop
from tests.e2e.conftest import Stack, running_stack
from tests.tokens import bearer

REPLICAS = 2


@pytest.fixture(scope="package")
def replicated(test_env: StackEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        test_env,
        tmp_path_factory.mktemp("replicas"),
        "--replicas",
        str(REPLICAS),
        RATE_LIMIT_PER_MINUTE="60000",  # the tests poll; the limit is not what they test
    ) as running:
        yield running


def replica_url(stack: Stack, service: str, replica: int) -> str:
    return f"http://127.0.0.1:{replica_port(stack.ports[service], replica)}"


async def metric(stack: Stack, service: str, replica: int, name: str, **labels: str) -> float:
    """The sum of `name`'s samples with `labels` on one replica's /metrics (0 if none)."""
    url = f"{replica_url(stack, service, replica)}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Until `await predicate()` is true."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(interval)


@pytest.fixture
async def gateway(replicated: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=replicated.url) as session:
        yield session


@pytest.fixture
async def shop(gateway: aiohttp.ClientSession, replicated: Stack) -> AsyncIterator[Shop]:
    resp = await gateway.post(
        "/api/auth/login",
        json={"email": replicated.admin_email, "password": replicated.admin_password},
    )
    assert resp.status == 200, await resp.text()
    admin = bearer((await resp.json())["access_token"])
    body = {"sku": f"RS-{secrets.token_hex(4)}", "name": "Replicated mug", "price": "9.50"}
    resp = await gateway.post("/api/products", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    shop = Shop(gateway, replicated, (await resp.json())["id"])
    await shop.payments(success_rate=1.0, latency_ms=0)
    yield shop
    await shop.payments(success_rate=1.0, latency_ms=0)

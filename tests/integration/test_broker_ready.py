"""`/ready` says whether the broker is usable, for every service whose work needs it: the
relay (it publishes the log), the consumers' services (cart, order-consumer) and
log-service (it consumes the shipped lines). The others need RabbitMQ for nothing but
shipping their own log lines, which buffer while it is away, so their readiness does not
depend on it. An unreachable broker is an AMQP URL whose port nothing listens on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from microshop.config import Config
from services.auth.app import create_app as create_auth
from services.cart.app import create_app as create_cart
from services.gateway.app import create_app as create_gateway
from services.log.app import create_app as create_log
from services.order_consumer.app import create_app as create_order_consumer
from services.product.app import create_app as create_product
from services.relay.app import create_app as create_relay
from tests.conftest import StackEnv, closed_port_url, stand_in
from tests.tokens import TEST_KEYS

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


def unreachable_broker() -> str:
    return closed_port_url().replace("http://", "amqp://guest:guest@") + "/"


async def readiness(client: Client, seconds: float = 3.0) -> tuple[int, Any]:
    """The answer of `/ready` once it has been the same for a moment (workers start)."""
    await asyncio.sleep(seconds)
    resp = await client.get("/ready")
    return resp.status, await resp.json()


NEEDS_THE_BROKER: dict[str, Callable[[Config], web.Application]] = {
    "relay": create_relay,
    "cart": lambda config: create_cart(config, token_keys=TEST_KEYS),
    "order-consumer": lambda config: create_order_consumer(config, token_keys=TEST_KEYS),
    "log": lambda config: create_log(config, token_keys=TEST_KEYS),
}


@pytest.mark.parametrize("service", sorted(NEEDS_THE_BROKER))
async def test_ready_is_503_while_the_broker_is_unreachable(
    aiohttp_client: MakeClient, test_env: StackEnv, service: str
) -> None:
    config = test_env.config(amqp_url=unreachable_broker(), log_shipping=False)
    client = await aiohttp_client(NEEDS_THE_BROKER[service](config))
    status, body = await readiness(client)
    assert status == 503, body
    assert body["error"]["code"] == "not_ready"
    assert any(
        "broker" in problem or "consuming" in problem
        for problem in body["error"]["details"].values()
    ), body


async def test_a_standby_relay_is_ready_while_the_broker_answers(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    """The relay holding the leader lock may be another one; this one is ready to take over
    only while the broker it would publish to answers."""
    config = test_env.config(log_shipping=False)
    client = await aiohttp_client(create_relay(config))
    async with asyncio.timeout(15):
        while (await client.get("/ready")).status != 200:
            await asyncio.sleep(0.1)


async def healthy(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@pytest.mark.parametrize(
    "make",
    [
        lambda config: create_gateway(config, token_keys=TEST_KEYS),
        create_auth,
        lambda config: create_product(config, token_keys=TEST_KEYS),
    ],
    ids=["gateway", "auth", "product"],
)
async def test_services_that_only_ship_logs_stay_ready_without_the_broker(
    aiohttp_client: MakeClient, test_env: StackEnv, make: Callable[[Config], web.Application]
) -> None:
    upstream = web.Application()
    upstream.router.add_get("/health", healthy)
    async with stand_in(upstream) as url:
        urls = {f"{s}_url": url for s in ("auth", "product", "cart", "order", "log")}
        config = test_env.config(amqp_url=unreachable_broker(), **urls)
        client = await aiohttp_client(make(config))
        status, body = await readiness(client, seconds=1.0)
        assert status == 200, body

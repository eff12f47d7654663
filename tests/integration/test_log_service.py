"""log-service and log shipping on the real broker and database.

Lines go the way a service's do: a `LogBuffer` on a logger, a `LogShipper` to `{ns}.logs`,
log-service's intake into Postgres, and back out through `GET /api/logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiormq
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pamqp.commands import Basic

from eventstore.amqp import Queues
from eventstore.pg import Pool
from microshop import context
from microshop.logs import LOG_QUEUE_ARGUMENTS, LogBuffer, LogShipper, declare_log_topology
from services.log.app import INGESTOR, create_app
from services.log.lines import LogRow
from services.log.store import delete_older_than, insert_rows
from tests.broker import closed_node_url, declared_queues
from tests.conftest import StackEnv
from tests.tokens import TEST_KEYS, admin_token, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

ADMIN = bearer(admin_token())


@pytest.fixture
async def logs(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    """A running log-service (its intake consuming `{ns}.logs`)."""
    client = await aiohttp_client(create_app(test_env.config(), token_keys=TEST_KEYS))
    await asyncio.wait_for(client.app[INGESTOR].ready.wait(), 30)
    return client


@contextlib.contextmanager
def shipping_logger(name: str, buffer: LogBuffer) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"shiptest.{name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(buffer)
    try:
        yield logger
    finally:
        logger.removeHandler(buffer)


@contextlib.asynccontextmanager
async def shipping(
    test_env: StackEnv, service: str, amqp_url: str | None = None, **kwargs: Any
) -> AsyncIterator[LogShipper]:
    buffer = LogBuffer(service, **kwargs)
    shipper = LogShipper(
        buffer,
        amqp_url=amqp_url or test_env.amqp_url,
        namespace=test_env.namespace,
        service=service,
        interval=0.02,
    )
    task = asyncio.create_task(shipper.run())
    try:
        yield shipper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def query(client: Client, **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/logs", params=params, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def wait_for_lines(
    client: Client, count: int, timeout: float = 30, **params: str
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items = await query(client, **params)
        if len(items) >= count or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.1)


def in_correlation(correlation_id: str) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        token = context.correlation_id.set(correlation_id)
        try:
            yield
        finally:
            context.correlation_id.reset(token)

    return scope()


async def test_shipped_lines_are_stored_and_searchable(
    logs: Client, test_env: StackEnv, uid: str
) -> None:
    service = f"svc-{uid}"
    async with shipping(test_env, service) as shipper:
        with shipping_logger(uid, shipper.buffer) as logger:
            with in_correlation(f"corr-{uid}"):
                logger.info("placed order %s", "o-1", extra={"order_id": "o-1"})
                logger.warning("payment slow")
                logger.error("payment failed", extra={"event_id": "e-1"})
            logger.info("outside the correlation")
        items = await wait_for_lines(logs, 4, service=service)
    assert [i["message"] for i in items] == [
        "outside the correlation",
        "payment failed",
        "payment slow",
        "placed order o-1",
    ]  # newest first
    placed = items[-1]
    assert placed["service"] == service and placed["level"] == "INFO"
    assert placed["correlation_id"] == f"corr-{uid}" and placed["order_id"] == "o-1"
    assert isinstance(placed["id"], int) and placed["ts"].endswith("Z")

    errors = await query(logs, service=service, level="ERROR")
    assert [(i["message"], i["event_id"]) for i in errors] == [("payment failed", "e-1")]
    warnings = await query(logs, service=service, level="warning")  # WARNING is WARN
    assert [i["level"] for i in warnings] == ["WARN"]
    correlated = await query(logs, correlation_id=f"corr-{uid}")
    assert len(correlated) == 3
    assert [i["message"] for i in await query(logs, service=service, q="SLOW")] == ["payment slow"]
    assert len(await query(logs, service=service, limit="2")) == 2
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    assert await query(logs, service=service, since=later) == []
    assert len(await query(logs, service=service, until=later)) == 4
    assert shipper.shipped == 4 and shipper.buffer.dropped == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "LOUD"}, "level"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"correlation_id": "a b"}, "correlation_id"),
        ({"service": "Bad Name"}, "service"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ],
)
async def test_bad_filters_are_422(logs: Client, params: dict[str, str], field: str) -> None:
    resp = await logs.get("/api/logs", params=params, headers=ADMIN)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "validation_error"
    assert field in body["error"]["details"]


async def test_only_admins_read_logs(logs: Client) -> None:
    assert (await logs.get("/api/logs")).status == 401
    assert (await logs.get("/api/logs", headers=bearer(mint()))).status == 403
    assert (await logs.get("/api/logs", headers=bearer(mint(other_key=True)))).status == 401


async def test_bad_lines_are_rejected_without_losing_their_batch(
    logs: Client, test_env: StackEnv, uid: str
) -> None:
    service = f"raw-{uid}"
    good = msgspec.json.encode({"service": service, "level": "INFO", "message": "kept"})
    nul = msgspec.json.encode({"service": service, "level": "INFO", "message": "a\u0000b"})
    body = b"\n".join([b"not json", good, b"[1, 2]", nul, b"", good])
    connection = await aiormq.connect(test_env.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange, _ = await declare_log_topology(channel, test_env.namespace, Queues())
        before = logs.app[INGESTOR].stats.rejected
        confirmation = await channel.basic_publish(
            body, exchange=exchange, routing_key=service, properties=Basic.Properties()
        )
        assert isinstance(confirmation, Basic.Ack)
    finally:
        await connection.close()
    items = await wait_for_lines(logs, 2, service=service)
    assert [i["message"] for i in items] == ["kept", "kept"]
    stats = logs.app[INGESTOR].stats
    deadline = time.monotonic() + 10
    while stats.rejected - before < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert stats.rejected - before == 3  # not JSON, not an object, a NUL jsonb refuses


async def test_lines_wait_in_the_queue_while_log_service_is_down(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    service = f"outage-{uid}"
    async with shipping(test_env, service) as shipper:
        with shipping_logger(uid, shipper.buffer) as logger:
            for n in range(50):
                logger.warning("line %d while log-service is down", n)
            deadline = time.monotonic() + 30
            while shipper.shipped < 50 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    assert shipper.shipped == 50  # confirmed by the broker, with nobody consuming

    client = await aiohttp_client(create_app(test_env.config(), token_keys=TEST_KEYS))
    items = await wait_for_lines(client, 50, service=service, limit="100")
    assert sorted(int(i["message"].split()[1]) for i in items) == list(range(50))


async def test_a_full_buffer_drops_and_counts_instead_of_blocking(uid: str) -> None:
    buffer = LogBuffer(f"full-{uid}", capacity=3)
    with shipping_logger(f"full-{uid}", buffer) as logger:
        for n in range(5):
            logger.warning("line %d", n)
    assert buffer.dropped == 2
    assert [msgspec.json.decode(line)["message"] for line in buffer.lines] == [
        "line 0",
        "line 1",
        "line 2",
    ]


async def test_the_buffer_is_capped_in_bytes_too(uid: str) -> None:
    """10,000 tracebacks of 5 kB would be 50 MB: the byte cap holds them to `max_bytes`."""
    buffer = LogBuffer(f"bytes-{uid}", capacity=10_000, max_bytes=20_000)
    with shipping_logger(f"bytes-{uid}", buffer) as logger:
        for n in range(100):
            logger.warning("line %d %s", n, "x" * 5_000)
    assert 3 <= len(buffer.lines) <= 4 and buffer.dropped == 100 - len(buffer.lines)
    assert buffer.size == sum(map(len, buffer.lines)) <= 20_000
    batch = buffer.take(10)
    assert buffer.size == 0 and not buffer.lines
    buffer.put_back(batch)
    assert buffer.size == sum(map(len, batch)) and list(buffer.lines) == batch


async def test_an_unreachable_broker_keeps_lines_buffered(uid: str) -> None:
    buffer = LogBuffer(f"nobroker-{uid}", capacity=100)
    shipper = LogShipper(
        buffer,
        amqp_url="amqp://guest:guest@127.0.0.1:1/",
        namespace=f"nobroker-{uid}",
        service="x",
        interval=0.01,
    )
    task = asyncio.create_task(shipper.run())
    with shipping_logger(f"nobroker-{uid}", buffer) as logger:
        for n in range(20):
            logger.error("line %d", n)
    deadline = time.monotonic() + 10
    while shipper.failures < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert shipper.failures >= 2 and shipper.shipped == 0
    assert len(buffer.lines) == 20 and buffer.dropped == 0  # nothing lost, nothing sent


async def test_retention_removes_only_old_lines(pool: Pool, uid: str) -> None:
    now = dt.datetime.now(dt.UTC)

    def row(age_days: float, message: str) -> LogRow:
        line = msgspec.json.encode({"message": message, "service": f"ret-{uid}"})
        return LogRow(
            now - dt.timedelta(days=age_days),
            f"ret-{uid}",
            "INFO",
            message,
            None,
            None,
            msgspec.Raw(line),
        )

    stored, rejected = await insert_rows(pool, [row(30, "old"), row(13, "recent"), row(0, "new")])
    assert (stored, rejected) == (3, 0)
    assert await delete_older_than(pool, 14) >= 1
    left = await pool.fetch("SELECT message FROM logs WHERE service = $1 ORDER BY ts", f"ret-{uid}")
    assert [r["message"] for r in left] == ["recent", "new"]


async def test_the_log_queue_is_a_quorum_queue_capped_by_dropping_the_oldest(
    logs: Client, test_env: StackEnv
) -> None:
    name = f"{test_env.namespace}.logs"
    declared = declared_queues(test_env.vhost, name)[name]
    assert declared.type == "quorum"
    assert declared.arguments == {**LOG_QUEUE_ARGUMENTS, "x-queue-type": "quorum"}
    assert declared.arguments["x-overflow"] == "drop-head"


async def test_lines_travel_through_whichever_broker_node_answers(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    """AMQP_URL lists a cluster's nodes, the first ones down: shippers and log-service
    both get through."""
    down = closed_node_url(test_env.amqp_url)
    url = f"{down},{down},{test_env.amqp_url}"
    client = await aiohttp_client(create_app(test_env.config(amqp_url=url), token_keys=TEST_KEYS))
    await asyncio.wait_for(client.app[INGESTOR].ready.wait(), 30)
    service = f"nodes-{uid}"
    async with shipping(test_env, service, amqp_url=url) as shipper:
        with shipping_logger(uid, shipper.buffer) as logger:
            for n in range(5):
                logger.warning("line %d", n)
        items = await wait_for_lines(client, 5, service=service)
    assert sorted(i["message"] for i in items) == [f"line {n}" for n in range(5)]

"""`ServiceClient` over several replicas of a service: spread, set aside, repeated only
when harmless. The replicas are real local HTTP servers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from microshop.client import ServiceClient, ServiceFailed, ServiceUnreachable, Upstream
from tests.conftest import closed_port_url, stand_in


class Replica:
    """A stand-in replica counting what reaches it; `drop` closes the connection instead
    of answering (as a process dying mid-request would)."""

    def __init__(self, name: str, *, delay: float = 0.0, drop: bool = False) -> None:
        self.name, self.delay, self.drop = name, delay, drop
        self.hits: collections.Counter[str] = collections.Counter()

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.hits[request.method] += 1
            if self.drop:
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            await asyncio.sleep(self.delay)
            return web.json_response({"replica": self.name})

        app = web.Application()
        app.router.add_route("*", "/thing", handle)
        return app


@contextlib.asynccontextmanager
async def serving(*replicas: Replica) -> AsyncIterator[list[str]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(stand_in(r.app())) for r in replicas]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_calls_take_turns_and_avoid_the_busy_replica(
    session: aiohttp.ClientSession,
) -> None:
    fast, slow = Replica("fast"), Replica("slow", delay=0.3)
    async with serving(fast, slow) as urls:
        client = ServiceClient(session, "thing", Upstream("thing", urls))
        for _ in range(10):  # one at a time: equal in flight, so they take turns
            assert (await client.get("/thing")).status == 200
        assert fast.hits["GET"] == slow.hits["GET"] == 5

        limit = asyncio.Semaphore(4)

        async def get() -> None:
            async with limit:
                await client.get("/thing")

        await asyncio.gather(*(get() for _ in range(40)))
    # four at a time: the slow one is busy for 0.3 s with each call, the fast one is not
    assert fast.hits["GET"] - 5 > 2 * (slow.hits["GET"] - 5), (fast.hits, slow.hits)


async def test_a_replica_refusing_connections_is_set_aside_for_any_call(
    session: aiohttp.ClientSession,
) -> None:
    up = Replica("up")
    async with serving(up) as [url]:
        upstream = Upstream("thing", [closed_port_url(), url])
        client = ServiceClient(session, "thing", upstream)
        for method in ("GET", "POST", "DELETE") * 4:  # never reached the closed one: resend
            reply = await client.request(method, "/thing")
            assert reply.body == {"replica": "up"}
    assert up.hits == {"GET": 4, "POST": 4, "DELETE": 4}
    assert upstream.ejections == 1  # set aside once, then left alone
    assert upstream.ejected_until[0] > 0 and upstream.retries == 1


async def test_every_replica_refusing_is_unreachable_and_they_are_tried_again(
    session: aiohttp.ClientSession,
) -> None:
    upstream = Upstream("thing", [closed_port_url(), closed_port_url()], eject_base=60)
    client = ServiceClient(session, "thing", upstream)
    for _ in range(3):  # all set aside: tried anyway, not failed without a try
        with pytest.raises(ServiceUnreachable):
            await client.get("/thing")
    assert upstream.ejections == 6


async def test_a_call_that_may_have_arrived_is_repeated_only_when_harmless(
    session: aiohttp.ClientSession,
) -> None:
    dropping, fine = Replica("dropping", drop=True), Replica("fine")
    async with serving(dropping, fine) as urls:
        upstream = Upstream("thing", urls)
        client = ServiceClient(session, "thing", upstream)
        with pytest.raises(ServiceFailed):  # a POST may have had its effect: not repeated
            await client.post("/thing")  # the first call goes to the first replica
        assert (dropping.hits["POST"], fine.hits["POST"]) == (1, 0)

        for _ in range(4):  # GETs and keyed POSTs are: each gets its answer elsewhere
            assert (await client.get("/thing")).body == {"replica": "fine"}
            keyed = await client.post("/thing", headers={"Idempotency-Key": "k-1"})
            assert keyed.body == {"replica": "fine"}
    assert dropping.hits["POST"] > 1 and upstream.retries > 0  # dropped, then sent on
    assert fine.hits == {"GET": 4, "POST": 4} and upstream.ejections == 0

"""The floor under an order's cost: the shop's plumbing priced piece by piece.

Run `python -m bench.floor [--quick]`: one JSON object on stdout, progress on stderr.

An order makes the shop do a fixed amount of plumbing whatever its business logic: HTTP
hops between the client, the gateway and the services, appends to the event store,
events relayed to RabbitMQ, messages consumed, events folded into read models. This
benchmark measures that amount on the real stack (a short `bench.orders` run: its
`work_per_order`, from every service's metrics) and then prices each piece alone, with
the business logic stubbed out, as the machine's CPU (every process, Postgres and
RabbitMQ included: `/proc/stat` busy time while nothing else runs) per unit at 8 at a
time:

- `http_hop_bare`: a JSON POST from an aiohttp client to a bare aiohttp server in another
  process (keep-alive), answering a small JSON body;
- `http_hop_kernel`: the same to an app made by the shop's kernel (`make_app`: request
  and correlation ids, tracing, metrics, JSON errors, log shipping), without a database;
- `append`: `PostgresEventStore.append` of one event to a new stream (group commit on);
- `relay`: `Relay` publishing an appended event to RabbitMQ with confirms;
- `consume`: a `Consumer` taking one message from its queue and recording it in its
  inbox in a transaction (the handler does nothing else);
- `project`: a `ProjectionRunner` folding one event into a one-row-per-stream table;
- `read_row`: one row read by primary key through the pool (a GET's database work).

`floor_ms_per_order` is the sum of the counts times their prices, next to the machine's
CPU per order measured in the same run: the rest is what the services do beyond the
plumbing (validation, domain logic, authorization, more queries than one per hop, log
lines, background work).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import uvloop

from bench import orders
from bench._common import BenchError, amqp_url, info, scratch_database, unique_name
from bench._procs import machine_busy_seconds
from eventstore import (
    NO_STREAM,
    Consumer,
    EventRegistry,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    RecordedEvent,
    Relay,
    Row,
    create_pool,
)

CONCURRENCY = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    units: int  # of each piece
    orders_seconds: float  # the bench.orders window that counts the work per order


FULL = Sizes(units=15_000, orders_seconds=20)
QUICK = Sizes(units=5000, orders_seconds=8)


@dataclasses.dataclass(frozen=True, slots=True)
class Noted:
    text: str
    n: int


REGISTRY = EventRegistry()
REGISTRY.register(Noted, name="FloorNoted")


@dataclasses.dataclass(frozen=True, slots=True)
class Price:
    machine_ms: float  # every process's CPU per unit
    here_ms: float  # of which this process's (the client, relay, consumer or runner side)


async def cpu_per_unit(units: int, work: Callable[[], Awaitable[Any]]) -> Price:
    """The machine's CPU per unit while `work` does `units` of them, and this process's."""
    before, here = machine_busy_seconds(), time.process_time()
    started = time.perf_counter()
    await work()
    busy, here = machine_busy_seconds() - before, time.process_time() - here
    price = Price(busy * 1000 / units, here * 1000 / units)
    info(
        f"    {units:,} in {time.perf_counter() - started:.2f} s: {price.machine_ms:.3f} ms "
        f"each ({price.here_ms:.3f} ms in this process)"
    )
    return price


async def eight_at_a_time(units: int, one: Callable[[int], Awaitable[Any]]) -> None:
    """`one(i)` for i in range(units), CONCURRENCY at a time."""
    queue = iter(range(units))

    async def lane() -> None:
        for i in queue:
            await one(i)

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


# -- HTTP ------------------------------------------------------------------------------

SERVER = textwrap.dedent(
    """
    import os, sys
    from aiohttp import web

    kind, port = sys.argv[1], int(sys.argv[2])

    async def hop(request):
        body = await request.json()
        return web.json_response({"id": body["id"], "status": "ok", "items": body["items"]})

    routes = [web.post("/hop", hop)]
    if kind == "bare":
        app = web.Application()
        app.add_routes(routes)
    else:
        from microshop.app import make_app
        from microshop.config import Config
        app = make_app(Config.from_env(), "floor", routes=routes, database=False)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
    """
)


@contextlib.asynccontextmanager
async def http_server(kind: str, namespace: str) -> AsyncIterator[str]:
    [port] = orders.free_ports(1)
    env = dict(
        os.environ,
        AMQP_URL=amqp_url(),
        MICROSHOP_NAMESPACE=namespace,
        LOG_LEVEL="WARNING",
        INTERNAL_API_KEY=uuid.uuid4().hex,
        NO_COLOR="1",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, kind, str(port), env=env
    )
    url = f"http://127.0.0.1:{port}/hop"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    raise BenchError(f"the {kind} server exited ({process.returncode})")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(url, json=_body(0)) as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await process.wait()


def _body(i: int) -> dict[str, Any]:
    line = {"product_id": "prod-0001", "name": "Benchmark mug", "unit_price": "9.99"}
    return {"id": str(uuid.UUID(int=i)), "items": [line | {"quantity": 1}]}


async def price_http(kind: str, units: int, namespace: str) -> Price:
    info(f"  http_hop_{kind}")
    async with http_server(kind, namespace) as url:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> None:
                async with session.post(url, json=_body(i)) as resp:
                    if resp.status != 200:
                        raise BenchError(f"the {kind} server answered {resp.status}")
                    await resp.read()

            await eight_at_a_time(CONCURRENCY * 10, one)  # warm: connections
            return await cpu_per_unit(units, lambda: eight_at_a_time(units, one))


# -- the event store, the relay, consumers and read models ---------------------------------


class FloorProjection(Projection):
    name = "floor_notes"
    table = "floor_notes"
    key = "stream_id"
    categories = frozenset({"floor"})
    columns = ("stream_id", "count", "last_text", "version")

    def key_of(self, event: RecordedEvent) -> str | None:
        return event.stream_id if event.category == "floor" else None

    def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
        row = row or {"stream_id": event.stream_id, "count": 0, "last_text": "", "version": 0}
        row["count"] += 1
        row["last_text"] = event.data.text
        row["version"] = event.stream_version
        return row


class FloorRows(FloorProjection):
    name = "floor_rows"  # fills the table for `read_row`, untimed


async def price_store(dsn: str, units: int, namespace: str) -> dict[str, Price]:
    prices: dict[str, Price] = {}
    pool = await create_pool(dsn, min_size=2, max_size=10, application_name="bench-floor")
    store = PostgresEventStore(pool, registry=REGISTRY, dsn=dsn)
    try:
        await pool.execute(
            """CREATE TABLE floor_notes (stream_id text PRIMARY KEY, count int NOT NULL,
                   last_text text NOT NULL, version int NOT NULL)"""
        )

        async def append(i: int) -> None:
            await store.append(f"floor-{i}", [Noted(f"note {i}", i)], NO_STREAM)

        info("  append")
        await eight_at_a_time(100, lambda i: append(units + i))  # warm: connections
        prices["append"] = await cpu_per_unit(units, lambda: eight_at_a_time(units, append))

        info("  read_row")
        await ProjectionRunner(store, FloorRows()).catch_up()
        # untimed: what autovacuum would otherwise do to the fresh rows while timed
        await pool.execute("VACUUM (ANALYZE) events, floor_notes")

        async def read(i: int) -> None:
            row = await pool.fetchrow(
                "SELECT * FROM floor_notes WHERE stream_id = $1", f"floor-{i}"
            )
            if row is None:
                raise BenchError(f"no row floor-{i}")

        prices["read_row"] = await cpu_per_unit(units, lambda: eight_at_a_time(units, read))

        info("  project")
        await pool.execute("TRUNCATE floor_notes")
        await pool.execute("VACUUM (ANALYZE) floor_notes")
        runner = ProjectionRunner(store, FloorProjection(), batch_size=100)
        prices["project"] = await cpu_per_unit(units + 100, runner.catch_up)

        prices |= await price_broker(store, units + 100, namespace)
    finally:
        await store.close()
        await pool.close()
    return prices


async def price_broker(store: PostgresEventStore, units: int, namespace: str) -> dict[str, Price]:
    """The relay publishing the appended events, then a consumer taking them."""
    prices: dict[str, Price] = {}
    handled = 0
    done = asyncio.Event()

    async def handler(ctx: Any) -> None:
        nonlocal handled
        async with ctx.transaction():
            pass
        handled += 1
        if handled >= units:
            done.set()

    consumer = Consumer(
        store,
        amqp_url=amqp_url(),
        namespace=namespace,
        name="floor",
        bindings=["#"],
        handler=handler,
        prefetch=32,
    )
    consuming = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(30):
            await consumer.ready.wait()  # its queue is declared and bound
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)

        info("  relay")
        relay = Relay(store, amqp_url(), f"{namespace}.events", name="floor", batch_size=500)

        async def publish() -> None:
            published = 0
            while published < units:
                published += await relay.run_once()

        prices["relay"] = await cpu_per_unit(units, publish)

        info("  consume")
        consumer.ready.clear()

        async def consume() -> None:
            task = asyncio.create_task(consumer.run())
            try:
                async with asyncio.timeout(120):
                    await done.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        prices["consume"] = await cpu_per_unit(units, consume)
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
    return prices


# -- the whole --------------------------------------------------------------------------

PIECES = {  # the price that stands for each count of work per order
    "http_requests": "http_hop_kernel",
    "appends": "append",
    "events_relayed": "relay",
    "messages_consumed": "consume",
}


async def run(sizes: Sizes, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    info(f"the real flow: bench.orders for {sizes.orders_seconds:.0f} s at 8 clients")
    measured = await orders.run(8, sizes.orders_seconds, quick)
    work: dict[str, float] = measured["work_per_order"]
    prices: dict[str, Price] = {}
    namespace = unique_name("bench_floor")
    info(f"pricing each piece, {sizes.units:,} of each, {CONCURRENCY} at a time")
    try:
        for kind in ("bare", "kernel"):
            prices[f"http_hop_{kind}"] = await price_http(kind, sizes.units, namespace)
        async with scratch_database("microshop_bench_floor") as dsn:
            prices |= await price_store(dsn, sizes.units, namespace)
    finally:
        await orders.remove_broker_objects(namespace, consumers=["floor"])
    # every event appended is folded by the read model of its stream (reads, like a GET's
    # row, are the services' own work: priced, not counted)
    counted = {piece: work[count] for count, piece in PIECES.items()}
    counted["project"] = work["events_appended"]
    floor = {piece: round(n * prices[piece].machine_ms, 2) for piece, n in counted.items()}
    floor_ms = sum(floor.values())
    machine = measured["cpu_ms_per_order"]["machine"]
    return {
        "prices_ms": {k: round(v.machine_ms, 3) for k, v in prices.items()},
        "of_which_this_process_ms": {k: round(v.here_ms, 3) for k, v in prices.items()},
        "work_per_order": work,
        "floor_ms_per_order_by_piece": floor,
        "floor_ms_per_order": round(floor_ms, 2),
        "measured_ms_per_order": machine,
        "floor_share_of_measured": round(floor_ms / machine, 3),
        "measured": {
            k: measured[k] for k in ("orders_per_second", "p50_ms", "p99_ms", "cpu_ms_per_order")
        },
        "context": {
            "quick": quick,
            "units": sizes.units,
            "concurrency": CONCURRENCY,
            "cpus": os.cpu_count(),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="5,000 of each piece, 8 s of orders (<1 min)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    print(json.dumps(uvloop.run(run(sizes, args.quick)), indent=2))


if __name__ == "__main__":
    main()

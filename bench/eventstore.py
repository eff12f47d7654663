"""Event store throughput against bare asyncpg / aiormq baselines on one database and broker.

Run `python -m bench.eventstore [--quick]`: one JSON object on stdout, progress on stderr.

Every figure is events per second. Each subject is paired with a baseline that does the same
work with the bare driver; the pair runs in the same round, in alternating order, over
several rounds (see `bench._common`), and the medians are reported with every round's
numbers under `rounds`.

- `append_single` vs `raw_insert_single`: `PostgresEventStore.append` of one `ItemAdded` per call,
  expected version given, through a pool of one connection (which the store's notifier
  shares, as in a service with a pool of one); against an autocommit `INSERT` of the same
  row (same columns, JSON already encoded to text) on one plain connection into
  `raw_events`, a `LIKE events INCLUDING ALL` copy (same indexes, defaults and constraints).
- `append_concurrent_16` vs `raw_insert_concurrent_16`: the same with 16 writers at once,
  each on its own streams: one 16-connection pool, or 16 plain connections. The store may
  send appends that arrive together as one statement and one transaction (group commit,
  `eventstore/grouping.py`); each raw insert commits alone.
- `read_decode` vs `raw_read`: the whole global log through `PostgresEventStore.iter_all` (typed
  events: a dataclass with a `Decimal`, decoded `Metadata`); against a cursor (prefetch
  1000, in a transaction, row by row) over the same query: `GLOBAL_LOG_SQL`, limit NULL.
- `rebuild`: `eventstore.projection.rebuild` of the `streams` projection over the whole log.
- `events_check`: `eventstore.check.check_log` (what `microshop events check` runs), the
  whole log.
- `relay` vs `raw_publish`: `Relay.run_once` (publisher confirms) publishing the last events
  of the log from a checkpoint, in batches of 1000; against confirmed aiormq publishes of
  the same messages, pipelined 1000 at a time, built beforehand with `wire.encode_row` from
  the same rows. Both go to a fresh topic exchange with one durable queue bound, purged
  (and counted) after each run; the queue is of the type `AMQP_QUEUE_TYPE` names (quorum,
  like the services' queues, unless it says classic).

The write figures run first, on empty tables. The read, rebuild and relay figures run on a
log COPYed in afterwards: streams of about ten events interleaved at random, with realistic
metadata, vacuumed and checkpointed so that no timed run pays for hint bits or the COPY's
dirty pages. The database (`microshop_bench_<random>`), exchange and queue exist only for
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiormq
import asyncpg
import uvloop
from aiormq.abc import AbstractChannel
from pamqp.commands import Basic

from eventstore import checkpoints
from eventstore.amqp import QUORUM, queue_arguments
from eventstore.check import check_log
from eventstore.events import EventRegistry, Metadata, Position
from eventstore.maintenance import editing_events
from eventstore.pg import create_pool
from eventstore.rebuilding import rebuild
from eventstore.relay import Relay
from eventstore.store import GLOBAL_LOG_SQL, PostgresEventStore
from eventstore.streams import StreamsProjection
from eventstore.wire import encode_row

from ._common import (
    LOG_COLUMNS,
    BenchError,
    Results,
    Trial,
    amqp_url,
    info,
    run_round,
    scratch_database,
    unique_name,
)

WRITERS = 16
PAIRS = (
    ("append_single", "raw_insert_single"),
    ("append_concurrent_16", "raw_insert_concurrent_16"),
    ("read_decode", "raw_read"),
    ("relay", "raw_publish"),
)
TARGETS: dict[str, float] = {  # every target is a minimum
    "append_single_ratio": 0.85,
    "append_concurrent_16_ratio": 1.0,
    "read_decode_ratio": 0.8,
    "read_decode": 200_000,
    "rebuild": 200_000,
    "events_check": 200_000,
    "relay_ratio": 0.8,
}


# -- the events --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ItemAdded:
    cart_id: str
    product_id: str
    quantity: int
    unit_price: Decimal


REGISTRY = EventRegistry()
REGISTRY.register(ItemAdded)


def item_added(i: int) -> ItemAdded:
    return ItemAdded(
        cart_id=f"cart-{i // 10:07d}",
        product_id=f"sku-{i * 7919 % 100_000:06d}",
        quantity=1 + i % 5,
        unit_price=Decimal(f"{1 + i % 250}.{i % 100:02d}"),
    )


def metadata(i: int) -> Metadata:
    return Metadata(
        correlation_id=str(uuid.UUID(int=i * 2_654_435_761 % 2**128, version=4)),
        actor=f"user-{i % 5000:05d}",
        service="cart",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    rounds: int
    single: int  # events per round, one connection
    per_writer: int  # events per round and writer, 16 writers
    log: int  # events COPYed in for reading, rebuilding and relaying
    relay: int  # events at the end of the log published per relay run
    per_stream: int = 10

    def counts(self) -> dict[str, int]:
        return {
            "rounds": self.rounds,
            "append_single_events": self.single,
            "append_concurrent_events": self.per_writer * WRITERS,
            "writers": WRITERS,
            "log_events": self.log,
            "log_streams": self.log // self.per_stream,
            "relay_events": self.relay,
        }


QUICK = Sizes(rounds=3, single=1500, per_writer=150, log=100_000, relay=10_000)
FULL = Sizes(rounds=5, single=4000, per_writer=400, log=200_000, relay=30_000)


# -- writing -----------------------------------------------------------------------------

RAW_INSERT = (
    "INSERT INTO raw_events (stream_id, stream_version, event_id, event_type, schema_version,"
    " data, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Write:
    """One event to write: the store appends `event`, the baseline inserts `row`."""

    stream_id: str
    version: int
    event: ItemAdded
    metadata: Metadata
    row: tuple[Any, ...]


def plan_writes(tag: str, count: int, per_stream: int) -> list[Write]:
    """`count` events over streams of `per_stream` events, stream by stream."""
    writes = []
    for i in range(count):
        stream_id, version = f"cart-{tag}-{i // per_stream:06d}", i % per_stream + 1
        event, meta = item_added(i), metadata(i)
        row = (
            stream_id,
            version,
            uuid.uuid4(),
            "ItemAdded",
            1,
            REGISTRY.encode(event),
            REGISTRY.encode(meta),
        )
        writes.append(Write(stream_id, version, event, meta, row))
    return writes


async def append_each(store: PostgresEventStore, writes: Sequence[Write]) -> int:
    for w in writes:
        await store.append(w.stream_id, (w.event,), w.version - 1, metadata=w.metadata)
    return len(writes)


async def insert_each(conn: asyncpg.Connection, writes: Sequence[Write]) -> int:
    for w in writes:
        await conn.execute(RAW_INSERT, *w.row)
    return len(writes)


async def in_parallel(runs: Iterable[Awaitable[int]]) -> int:
    return sum(await asyncio.gather(*runs))


@dataclasses.dataclass(frozen=True, slots=True)
class Writers:
    one: PostgresEventStore  # on a pool of one connection
    many: PostgresEventStore  # on a pool of WRITERS connections
    raw: list[asyncpg.Connection]  # WRITERS plain connections; the first one writes alone


async def open_store(stack: contextlib.AsyncExitStack, dsn: str, size: int) -> PostgresEventStore:
    pool = await create_pool(dsn, min_size=size, max_size=size, application_name="bench")
    stack.push_async_callback(pool.close)
    store = PostgresEventStore(pool, registry=REGISTRY, dsn=dsn)
    stack.push_async_callback(store.close)
    return store


@contextlib.asynccontextmanager
async def writers(dsn: str) -> AsyncIterator[Writers]:
    async with contextlib.AsyncExitStack() as stack:
        one = await open_store(stack, dsn, 1)
        many = await open_store(stack, dsn, WRITERS)
        raw = []
        for _ in range(WRITERS):
            conn = await asyncpg.connect(dsn)
            stack.push_async_callback(conn.close)
            raw.append(conn)
        yield Writers(one, many, raw)


def single_trials(w: Writers, plan: list[Write]) -> list[Trial]:
    return [
        Trial("raw_insert_single", lambda: insert_each(w.raw[0], plan), len(plan)),
        Trial("append_single", lambda: append_each(w.one, plan), len(plan)),
    ]


def concurrent_trials(w: Writers, plans: list[list[Write]]) -> list[Trial]:
    total = sum(map(len, plans))
    return [
        Trial(
            "raw_insert_concurrent_16",
            lambda: in_parallel(insert_each(c, p) for c, p in zip(w.raw, plans, strict=True)),
            total,
        ),
        Trial(
            "append_concurrent_16",
            lambda: in_parallel(append_each(w.many, p) for p in plans),
            total,
        ),
    ]


def concurrent_plans(tag: str, per_writer: int, per_stream: int) -> list[list[Write]]:
    return [plan_writes(f"{tag}w{i:02d}", per_writer, per_stream) for i in range(WRITERS)]


async def measure_writes(dsn: str, sizes: Sizes, results: Results) -> None:
    info("writes: single connection and 16 concurrent writers")
    async with writers(dsn) as w:
        await w.raw[0].execute("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        per_stream = sizes.per_stream
        warm_up = [
            *single_trials(w, plan_writes("warm", 200, per_stream)),
            *concurrent_trials(w, concurrent_plans("warm", 20, per_stream)),
        ]
        for trial in warm_up:  # prepared statements, pools, caches
            await trial.run()
        for n in range(sizes.rounds):
            single = plan_writes(f"s{n}", sizes.single, per_stream)
            await run_round(results, n, single_trials(w, single))
            plans = concurrent_plans(f"c{n}", sizes.per_writer, per_stream)
            await run_round(results, n, concurrent_trials(w, plans))


# -- the log to read ---------------------------------------------------------------------


def log_records(sizes: Sizes, chunk: int = 20_000) -> Iterator[list[tuple[Any, ...]]]:
    """The log to COPY in, in chunks: events of random streams, versions in order."""
    rng = random.Random(20240501)
    versions = [0] * (sizes.log // sizes.per_stream)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    records: list[tuple[Any, ...]] = []
    for i in range(sizes.log):
        stream = rng.randrange(len(versions))
        versions[stream] += 1
        records.append(
            (
                f"cart-{stream:07d}",
                versions[stream],
                uuid.uuid4(),
                "ItemAdded",
                1,
                REGISTRY.encode(item_added(i)),
                REGISTRY.encode(metadata(i)),
                start + timedelta(milliseconds=i),
            )
        )
        if len(records) == chunk:
            yield records
            records = []
    if records:
        yield records


async def populate_log(dsn: str, sizes: Sizes) -> float:
    """Replace what the write figures left with the benchmark's log; return seconds taken."""
    info(f"populating the log: {sizes.log:,} events")
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        async with editing_events(conn):  # the log is append-only: lifted as its owner
            await conn.execute(
                "DROP TABLE raw_events; TRUNCATE events, checkpoints RESTART IDENTITY"
            )
        for records in log_records(sizes):  # one transaction (so one tx_id) per chunk
            await conn.copy_records_to_table("events", records=records, columns=LOG_COLUMNS)
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("CHECKPOINT")  # flush now rather than during a timed run
    finally:
        await conn.close()
    return time.perf_counter() - started


# -- reading and rebuilding --------------------------------------------------------------


async def cursor_read(conn: asyncpg.Connection) -> int:
    count = 0
    async with conn.transaction():
        async for _row in conn.cursor(GLOBAL_LOG_SQL, 0, 0, None, prefetch=1000):
            count += 1
    return count


async def decode_read(store: PostgresEventStore) -> int:
    count = 0
    async for batch in store.iter_all():
        count += len(batch)
    return count


async def check_all(store: PostgresEventStore) -> int:
    result = await check_log(store)
    if not result.ok:
        raise BenchError(f"events check: {len(result.failures)} events fail")
    return result.events


async def rebuild_streams(store: PostgresEventStore) -> int:
    return (await rebuild(store, StreamsProjection())).events


async def measure_reads(
    store: PostgresEventStore, conn: asyncpg.Connection, sizes: Sizes, results: Results
) -> None:
    info("reads: global log decoded, raw cursor, streams rebuild")
    trials = [
        Trial("raw_read", lambda: cursor_read(conn), sizes.log),
        Trial("read_decode", lambda: decode_read(store), sizes.log),
        Trial("rebuild", lambda: rebuild_streams(store), sizes.log),
        Trial("events_check", lambda: check_all(store), sizes.log),
    ]
    for trial in trials[:2]:  # warm-up: caches, prepared statements
        await trial.run()
    for n in range(sizes.rounds):
        await run_round(results, n, trials)


# -- relaying ----------------------------------------------------------------------------

Message = tuple[str, bytes, Basic.Properties]
# Confirmed publishes in flight at once, for the baseline and the relay's batches alike
# (on this broker 1000 beats both 250 and everything at once).
PUBLISH_WINDOW = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class Broker:
    url: str
    exchange: str
    queue: str
    publisher: AbstractChannel  # publisher confirms on
    admin: AbstractChannel
    version: str


def queue_type() -> str:
    return os.environ.get("AMQP_QUEUE_TYPE") or QUORUM


@contextlib.asynccontextmanager
async def broker_namespace(url: str) -> AsyncIterator[Broker]:
    """A fresh topic exchange with one durable queue bound to `#`; both deleted on exit."""
    exchange = unique_name("microshop_bench")
    queue = f"{exchange}.all"
    connection = await aiormq.connect(url)
    try:
        admin = await connection.channel()
        await admin.exchange_declare(exchange, exchange_type="topic", durable=True)
        await admin.queue_declare(queue, durable=True, arguments=queue_arguments(queue_type()))
        await admin.queue_bind(queue, exchange, routing_key="#")
        publisher = await connection.channel(publisher_confirms=True)
        version = str(connection.server_properties.get("version", "?"))
        yield Broker(url, exchange, queue, publisher, admin, version)
    finally:
        await connection.close()
        await delete_namespace(url, exchange, queue)


async def delete_namespace(url: str, exchange: str, queue: str) -> None:
    """On a connection of its own, so that a broken channel cannot leave them behind."""
    try:
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)
        finally:
            await connection.close()
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        info(f"could not delete exchange {exchange} / queue {queue}: {exc!r}")


async def publish_all(broker: Broker, messages: Sequence[Message]) -> int:
    """Publish with confirms, `PUBLISH_WINDOW` messages in flight at a time."""
    for start in range(0, len(messages), PUBLISH_WINDOW):
        confirms = await asyncio.gather(
            *(
                broker.publisher.basic_publish(
                    body, exchange=broker.exchange, routing_key=key, properties=properties
                )
                for key, body, properties in messages[start : start + PUBLISH_WINDOW]
            )
        )
        refused = sum(not isinstance(c, Basic.Ack) for c in confirms)
        if refused:
            raise BenchError(f"raw_publish: {refused} messages not confirmed")
    return len(messages)


async def purge(broker: Broker, expected: int) -> None:
    """Empty the queue, checking that every published message reached it."""
    ok = await broker.admin.queue_purge(broker.queue)
    if ok is None or ok.message_count != expected:
        found = None if ok is None else ok.message_count
        raise BenchError(f"the queue held {found} messages, expected {expected}")


async def relay_tail(conn: asyncpg.Connection, sizes: Sizes) -> tuple[Position, list[Any]]:
    """The position before the last `sizes.relay` events of the log, and those events."""
    before = await conn.fetchrow(
        "SELECT tx_id, global_position FROM events ORDER BY tx_id, global_position"
        " OFFSET $1 LIMIT 1",
        sizes.log - sizes.relay - 1,
    )
    if before is None:
        raise BenchError("the log is shorter than the relay's share of it")
    start = Position(*before)
    rows = await conn.fetch(GLOBAL_LOG_SQL, start.tx_id, start.global_position, sizes.relay)
    return start, rows


def relay_trials(
    store: PostgresEventStore, broker: Broker, name: str, messages: Sequence[Message]
) -> list[Trial]:
    relay = Relay(store, broker.url, broker.exchange, name=name, batch_size=PUBLISH_WINDOW)
    count = len(messages)

    async def drain() -> None:
        await purge(broker, count)

    return [
        Trial("raw_publish", lambda: publish_all(broker, messages), count, after=drain),
        Trial("relay", relay.run_once, count, after=drain),
    ]


async def idle_relay_ms(store: PostgresEventStore, broker: Broker, head: Position) -> float:
    """What a `run_once` with nothing to publish costs (connections, lock, declare)."""
    await checkpoints.save(store.pool, "bench-relay-idle", head)
    relay = Relay(store, broker.url, broker.exchange, name="bench-relay-idle")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        if await relay.run_once() != 0:
            raise BenchError("the idle relay published something")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def position_of(row: Any) -> Position:
    """The log position of a row of `store._COLUMNS`."""
    return Position(row[1], row[0])


async def warm_up_relay(
    store: PostgresEventStore, broker: Broker, rows: Sequence[Any], messages: Sequence[Message]
) -> None:
    """One small untimed run of each side: connections, prepared statements, the queue."""
    count = min(PUBLISH_WINDOW, len(rows) - 1)
    await checkpoints.save(store.pool, "bench-relay-warm", position_of(rows[-count - 1]))
    for trial in relay_trials(store, broker, "bench-relay-warm", messages[-count:]):
        await trial.run()
        await purge(broker, count)


async def measure_relay(
    store: PostgresEventStore,
    conn: asyncpg.Connection,
    broker: Broker,
    sizes: Sizes,
    results: Results,
) -> dict[str, float]:
    info(f"relay: the last {sizes.relay:,} events, to {broker.exchange}")
    start, rows = await relay_tail(conn, sizes)
    messages = [encode_row(r) for r in rows]
    await warm_up_relay(store, broker, rows, messages)
    for n in range(sizes.rounds):
        name = f"bench-relay-{n}"  # a checkpoint of its own, just before the tail
        await checkpoints.save(store.pool, name, start)
        await run_round(results, n, relay_trials(store, broker, name, messages))
    idle = await idle_relay_ms(store, broker, position_of(rows[-1]))
    return {"relay_idle_run_once_ms": round(idle, 2)}


@contextlib.asynccontextmanager
async def log_readers(dsn: str) -> AsyncIterator[tuple[PostgresEventStore, asyncpg.Connection]]:
    """A store on a small pool, and a plain connection for the baselines."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(dsn, min_size=2, max_size=4, application_name="bench")
        stack.push_async_callback(pool.close)
        store = PostgresEventStore(pool, registry=REGISTRY, dsn=dsn)
        stack.push_async_callback(store.close)
        conn = await asyncpg.connect(dsn)
        stack.push_async_callback(conn.close)
        yield store, conn


# -- the report --------------------------------------------------------------------------


def figures(results: Results) -> dict[str, float]:
    out: dict[str, float] = {}
    for subject, baseline in PAIRS:
        ratio = results.add_ratios(subject, baseline)
        out[subject] = round(results.median(subject), 1)
        out[baseline] = round(results.median(baseline), 1)
        out[ratio] = round(results.median(ratio), 3)
    out["rebuild"] = round(results.median("rebuild"), 1)
    out["events_check"] = round(results.median("events_check"), 1)
    return out


def report(results: Results, context: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = figures(results)
    out["targets"] = TARGETS
    out["meets_targets"] = {name: out[name] >= minimum for name, minimum in TARGETS.items()}
    out["rounds"] = {
        name: [round(v, 3 if name.endswith("_ratio") else 1) for v in values]
        for name, values in results.rounds.items()
    }
    out["context"] = context
    return out


def versions() -> dict[str, str]:
    packages = ("asyncpg", "aiormq", "msgspec", "uvloop")
    return {name: importlib.metadata.version(name) for name in packages}


async def run(sizes: Sizes, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    results = Results()
    context: dict[str, Any] = {
        "quick": quick,
        "python": platform.python_version(),
        "packages": versions(),
        "cpus": os.cpu_count(),
        "counts": sizes.counts(),
    }
    async with scratch_database("microshop_bench") as dsn, broker_namespace(amqp_url()) as broker:
        context["rabbitmq"] = broker.version
        context["queue_type"] = queue_type()
        await measure_writes(dsn, sizes, results)
        context["populate_seconds"] = round(await populate_log(dsn, sizes), 2)
        async with log_readers(dsn) as (store, conn):
            context["postgres"] = await conn.fetchval("SHOW server_version")
            await measure_reads(store, conn, sizes, results)
            context.update(await measure_relay(store, conn, broker, sizes, results))
    context["total_seconds"] = round(time.perf_counter() - started, 1)
    return report(results, context)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.eventstore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, 3 rounds (<45 s)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    print(json.dumps(uvloop.run(run(sizes, args.quick)), indent=2))


if __name__ == "__main__":
    main()

"""The Postgres event store on the real database: the port's contract, caller transactions,
the fenced global log and upcasting of rows as older code wrote them."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal

import asyncpg
import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    START,
    ConcurrencyError,
    DuplicateEventError,
    EventRegistry,
    Position,
    PostgresEventStore,
    RecordedEvent,
)
from eventstore.errors import UpcastError
from eventstore.pg import Pool, create_pool
from eventstore.wakeup import CHANNEL
from tests.conftest import StackEnv
from tests.contract.eventstore import EventStoreContract
from tests.samples import Noted, Priced


class TestPostgresEventStore(EventStoreContract):
    """The contract on Postgres (the `store` fixture of `tests/conftest.py`)."""


async def test_append_inside_a_caller_transaction(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    stream = f"cart-{uid}"
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await store.append(stream, [Noted("inside")], NO_STREAM, conn=conn)
        assert await store.stream_version(stream) == 0  # not visible before commit
        await tx.rollback()
    assert await store.read_stream(stream) == []

    async with pool.acquire() as conn, conn.transaction():
        await store.append(stream, [Noted("kept")], NO_STREAM, conn=conn)
        await store.append(stream, [Noted("then")], ANY, conn=conn)  # sees its own write
        assert (await store.read_stream(stream, conn=conn))[-1].stream_version == 2
    assert [e.data for e in await store.read_stream(stream)] == [Noted("kept"), Noted("then")]

    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [Noted("stale")], 1, conn=conn)
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await conn.execute("SELECT 1")  # a lost race aborts the caller's transaction
        await tx.rollback()
    assert caught.value.actual is None  # nothing can be asked on the aborted transaction
    # decided again in a new transaction: one retried in the old one would have its older
    # transaction id, and land in the log before the events it comes after
    async with pool.acquire() as conn, conn.transaction():
        version = await store.stream_version(stream)
        await store.append(stream, [Noted("retried")], version, conn=conn)
    assert [e.data.text for e in await store.read_stream(stream)] == ["kept", "then", "retried"]


async def test_an_append_racing_the_same_ids_in_a_transaction_is_a_duplicate(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """The clash aborted the racing transaction: its append cannot count as the retry of
    the one that landed (which it is outside a transaction), and it waits for no other
    connection of the pool (all of them could be held by such transactions)."""
    stream, ids = f"dup{uid}-1", [uuid.uuid4()]
    async with pool.acquire() as first, pool.acquire() as second:
        winner = first.transaction()
        await winner.start()
        await store.append(stream, [Noted("a")], NO_STREAM, event_ids=ids, conn=first)
        loser = second.transaction()
        await loser.start()
        racing = asyncio.ensure_future(
            store.append(stream, [Noted("a")], NO_STREAM, event_ids=ids, conn=second)
        )
        await asyncio.sleep(0.3)
        assert not racing.done()  # waits for the first transaction
        await winner.commit()
        with pytest.raises((ConcurrencyError, DuplicateEventError)):  # whichever key clashed
            await racing
        await loser.rollback()
    again = await store.append(stream, [Noted("a")], NO_STREAM, event_ids=ids)
    assert again.version == 1 and await store.stream_version(stream) == 1


async def test_a_lost_race_in_a_transaction_needs_no_other_connection(
    test_env: StackEnv, uid: str
) -> None:
    """With every connection of the pool held by transactions like this one, asking the
    stream's version on another would wait for good."""
    pool = await create_pool(test_env.database_url, max_size=1)
    store = PostgresEventStore(pool, dsn=test_env.database_url)
    stream = f"lone{uid}-1"
    try:
        await store.append(stream, [Noted("first")], NO_STREAM)
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            async with asyncio.timeout(10):
                with pytest.raises(ConcurrencyError):
                    await store.append(
                        stream, [Noted("late")], NO_STREAM, conn=conn, event_ids=[uuid.uuid4()]
                    )
            await tx.rollback()
    finally:
        await store.close()
        await pool.close()


async def test_an_append_in_a_transaction_wakes_readers_at_its_commit(
    store: PostgresEventStore, pool: Pool, uid: str, test_env: StackEnv
) -> None:
    """In the append's own statement (one round trip), delivered only once it commits,
    and not at all when it rolls back."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(test_env.database_url)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        category = f"wake{uid}"
        async with pool.acquire() as conn:
            async with conn.transaction():
                await store.append(f"{category}-1", [Noted("a")], NO_STREAM, conn=conn)
                await asyncio.sleep(0.2)
                assert heard.empty()  # not before the commit
            async with asyncio.timeout(5):
                assert await heard.get() == category
            tx = conn.transaction()
            await tx.start()
            await store.append(f"{category}-2", [Noted("b"), Noted("c")], NO_STREAM, conn=conn)
            await tx.rollback()
        await asyncio.sleep(0.3)
        assert heard.empty()  # nothing committed, nobody woken
    finally:
        await listener.close()


async def test_late_commits_are_never_skipped(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """16 writers hold their transactions open for random times while a reader tails the log.

    Transactions take their ids in one order and commit in another; a reader paging by
    `global_position` alone would skip the late ones. The fenced reader must see every
    event exactly once, in the final commit-safe order.
    """
    start = await store.head()
    writers, per_writer = 16, 12
    rng = random.Random(uid)
    seen: list[RecordedEvent] = []
    expected = writers * per_writer

    async def writer(w: int) -> None:
        for i in range(per_writer):
            async with pool.acquire() as conn, conn.transaction():
                await store.append(f"late{uid}-{w}", [Noted(f"{w}.{i}")], i, conn=conn)
                await asyncio.sleep(rng.uniform(0, 0.03))

    async def reader() -> None:
        watcher = store.watcher(poll_interval=0.05)
        after = start
        async with watcher:
            while len(seen) < expected:
                generation = watcher.generation
                async for batch in store.iter_all(after, batch_size=7):
                    seen.extend(e for e in batch if e.stream_id.startswith(f"late{uid}-"))
                    after = batch[-1].position
                await watcher.wait(generation)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    await asyncio.wait_for(reading, 30)

    rows = await pool.fetch(
        "SELECT event_id FROM events WHERE stream_id LIKE $1 ORDER BY tx_id, global_position",
        f"late{uid}-%",
    )
    final_order = [r["event_id"] for r in rows]
    assert len(final_order) == expected
    assert [e.event_id for e in seen] == final_order
    assert len({e.event_id for e in seen}) == len(seen)
    positions = [e.position for e in seen]
    assert positions == sorted(positions)


async def test_global_log_batches_are_ordered_and_resume_after_a_position(
    store: PostgresEventStore, uid: str
) -> None:
    start = await store.head()
    for i in range(25):
        await store.append(f"order{uid}-{i % 3}", [Noted(str(i))], ANY)
    collected: list[RecordedEvent] = []
    async for batch in store.iter_all(start, batch_size=4):
        assert len(batch) <= 4
        collected.extend(e for e in batch if e.stream_id.startswith(f"order{uid}-"))
    assert [e.data.text for e in collected] == [str(i) for i in range(25)]
    middle = collected[10].position
    rest = [
        e
        for e in await store.read_all(middle, limit=1000)
        if e.stream_id.startswith(f"order{uid}-")
    ]
    assert [e.data.text for e in rest] == [str(i) for i in range(11, 25)]
    assert await store.head() >= collected[-1].position
    assert Position(0, 0) == START


async def test_old_schema_version_is_upcast_on_read(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """An event stored as v1 (`{"name", "cents"}`) reads as v2 (`{"sku", "price"}`)."""
    registry = EventRegistry()
    type_name = f"UpcastPriced{uid}"  # unknown to the shared registry other tests read with
    registry.register(Priced, name=type_name, version=2)

    @registry.upcaster(type_name, from_version=1)
    def v1_to_v2(data: dict[str, object]) -> dict[str, object]:
        cents = int(str(data["cents"]))
        return {"sku": data["name"], "price": str(Decimal(cents) / 100)}

    stream = f"product-{uid}"
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                               schema_version, data)
           VALUES ($1, 1, $2, $3, 1, '{"name": "sku-9", "cents": 1999}')""",
        stream,
        uuid.uuid4(),
        type_name,
    )
    upcasting = PostgresEventStore(pool, registry=registry)

    [event] = await upcasting.read_stream(stream)
    assert event.schema_version == 1
    assert event.data == Priced("sku-9", Decimal("19.99"))

    from_log = [e for e in await upcasting.read_all(START, limit=100_000) if e.stream_id == stream]
    assert [e.data for e in from_log] == [Priced("sku-9", Decimal("19.99"))]

    newer = EventRegistry()
    newer.register(Priced, name=type_name, version=1)
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                               schema_version, data)
           VALUES ($1, 1, $2, $3, 3, '{"sku": "x", "price": "1"}')""",
        f"product-newer-{uid}",
        uuid.uuid4(),
        type_name,
    )
    with pytest.raises(UpcastError, match="newer than this code"):
        await PostgresEventStore(pool, registry=newer).read_stream(f"product-newer-{uid}")

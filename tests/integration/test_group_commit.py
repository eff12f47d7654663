"""Group commit on Postgres: concurrent appends of one process share transactions, and a
group that cannot go as a whole, or whose callers give up, still answers each of them
as if it had been sent alone (the contract suite checks the answers themselves)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from asyncpg.transaction import Transaction

from eventstore import NO_STREAM, ConcurrencyError, PostgresEventStore
from eventstore.pg import Pool
from tests.samples import Noted


async def transactions(pool: Pool, prefix: str) -> tuple[int, int]:
    """Events of the streams starting with `prefix`, and the transactions they came in."""
    row = await pool.fetchrow(
        "SELECT count(*), count(DISTINCT tx_id) FROM events WHERE stream_id LIKE $1",
        prefix + "%",
    )
    assert row is not None
    return row[0], row[1]


async def sixteen_writers(store: PostgresEventStore, prefix: str, appends: int = 10) -> None:
    async def writer(w: int) -> None:
        for version in range(appends):
            await store.append(f"{prefix}{w}", [Noted(str(version))], version)

    await asyncio.gather(*(writer(w) for w in range(16)))


async def test_concurrent_writers_share_transactions(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    await sixteen_writers(store, f"grouped{uid}-")
    events, txs = await transactions(pool, f"grouped{uid}-")
    assert events == 160
    assert txs < events  # about one transaction per round of the 16 writers

    alone = PostgresEventStore(pool, group_commit=False)
    try:
        await sixteen_writers(alone, f"alone{uid}-")
    finally:
        await alone.close()
    assert await transactions(pool, f"alone{uid}-") == (160, 160)


async def test_a_group_holds_at_most_max_events(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    assert store.group is not None
    store.group.max_events = 4
    await asyncio.gather(
        *(store.append(f"capped{uid}-{i}", [Noted("a"), Noted("b")], NO_STREAM) for i in range(9))
    )
    largest = await pool.fetchval(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM events WHERE stream_id LIKE $1"
        " GROUP BY tx_id) AS t",
        f"capped{uid}-%",
    )
    assert largest == 4


async def test_a_member_at_a_wrong_version_leaves_its_group_whole(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """Each member's check is its own: a stale or early expected version fails that member
    only, in the same transaction as the others (no fallback to one by one)."""
    await store.append(f"cart{uid}-behind", [Noted("a"), Noted("b")], NO_STREAM)
    first = asyncio.create_task(store.append(f"first{uid}", [Noted("a")], NO_STREAM))
    members = [store.append(f"cart{uid}-{i}", [Noted(str(i))], NO_STREAM) for i in range(6)]
    behind = store.append(f"cart{uid}-behind", [Noted("x")], 1)
    ahead = store.append(f"cart{uid}-ahead", [Noted("x")], 3)
    results = await asyncio.gather(
        *members[:3], behind, ahead, *members[3:], return_exceptions=True
    )
    await first

    assert [type(r) for r in results[3:5]] == [ConcurrencyError, ConcurrencyError]
    assert all(not isinstance(r, BaseException) for r in results[:3] + results[5:])
    assert await transactions(pool, f"cart{uid}-") == (6 + 2, 2)  # "behind", then the group


@contextlib.asynccontextmanager
async def uncommitted(pool: Pool, stream_id: str) -> AsyncIterator[Transaction]:
    """Version 1 of `stream_id` written by a transaction that stays open (a writer in
    another process): a writer of that version waits for it. Rolled back at the end unless
    the block commits or rolls it back itself."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, data)"
            " VALUES ($1, 1, $2, 'TestNoted', '{\"text\": \"other\"}')",
            stream_id,
            uuid.uuid4(),
        )
        try:
            yield tx
        finally:
            if conn.is_in_transaction():
                await tx.rollback()


async def blocked(pool: Pool, count: int = 1) -> None:
    """Until `count` statements of this database wait for a lock (an open transaction)."""
    async with asyncio.timeout(10):
        while True:
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)


async def test_an_append_cancelled_while_queued_writes_nothing(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    async with uncommitted(pool, f"cart{uid}-a") as other:
        first = asyncio.create_task(store.append(f"cart{uid}-a", [Noted("a")], NO_STREAM))
        await blocked(pool)  # the first append is in flight
        queued = asyncio.create_task(store.append(f"cart{uid}-b", [Noted("b")], NO_STREAM))
        kept = asyncio.create_task(store.append(f"cart{uid}-c", [Noted("c")], NO_STREAM))
        await asyncio.sleep(0.05)
        assert not queued.done()
        queued.cancel()
        await other.rollback()
    assert (await first).version == 1
    assert (await kept).version == 1
    with pytest.raises(asyncio.CancelledError):
        await queued
    await asyncio.sleep(0.05)
    assert await store.read_stream(f"cart{uid}-b") == []
    assert (await store.append(f"cart{uid}-b", [Noted("b")], NO_STREAM)).version == 1


async def test_cancelling_a_caller_does_not_stop_its_sent_group(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """Once sent, the group completes for every member; the cancelled one may land."""
    async with uncommitted(pool, f"cart{uid}-c") as other:
        first = asyncio.create_task(store.append(f"cart{uid}-a", [Noted("a")], NO_STREAM))
        b = asyncio.create_task(store.append(f"cart{uid}-b", [Noted("b")], NO_STREAM))
        c = asyncio.create_task(store.append(f"cart{uid}-c", [Noted("c")], NO_STREAM))
        await first
        await blocked(pool)  # the group of b and c waits for the other writer of c
        b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        await other.rollback()
    assert (await c).version == 1
    assert [e.data for e in await store.read_stream(f"cart{uid}-b")] == [Noted("b")]
    assert (await store.append(f"cart{uid}-b", [Noted("b2")], 1)).version == 2


async def test_a_group_refused_as_a_whole_answers_each_member_alone(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    """A writer in another process takes a version a member wanted: the statement fails
    with a unique violation, and the members go one by one."""
    async with uncommitted(pool, f"cart{uid}-c") as other:
        first = asyncio.create_task(store.append(f"cart{uid}-a", [Noted("a")], NO_STREAM))
        members = [
            asyncio.create_task(store.append(f"cart{uid}-{s}", [Noted(s)], NO_STREAM))
            for s in "bcd"
        ]
        await first
        await blocked(pool)
        await other.commit()
    b, c, d = await asyncio.gather(*members, return_exceptions=True)
    assert isinstance(c, ConcurrencyError) and (c.expected, c.actual) == (0, 1)
    assert not isinstance(b, BaseException) and b.version == 1
    assert not isinstance(d, BaseException) and d.version == 1
    assert [e.data for e in await store.read_stream(f"cart{uid}-c")] == [Noted("other")]

"""`execute` inside a caller's transaction on Postgres: a lost race is not retried in it.

The global log orders events by transaction id, and a transaction takes its id at its first
write. An append retried inside the transaction that lost a race would commit with an id
older than the events it lost to, and come before them in the log although it comes after
them in its stream (a read model folding the log would then see the stream out of order).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import pytest

from eventstore import (
    ANY,
    Aggregate,
    Category,
    ConcurrencyError,
    PostgresEventStore,
    RecordedEvent,
    execute,
)
from eventstore.command import Loaded, recall
from eventstore.pg import Pool
from tests.samples import Noted


def total(events: Iterable[object], state: int) -> int:
    return state + sum(e.n for e in events if isinstance(e, Noted))


class Busy(PostgresEventStore):
    """Another writer appends to the stream right after our next `interfere` reads of it."""

    reads = 0
    interfere = 0

    async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
        read = await super().read_stream(stream_id, **options)
        self.reads += 1
        if self.interfere:
            self.interfere -= 1
            await super().append(stream_id, [Noted("theirs", 1)], ANY)  # its own transaction
        return read


async def test_a_race_lost_in_a_transaction_comes_out_to_be_tried_in_a_new_one(
    pool: Pool, uid: str
) -> None:
    busy = Busy(pool, group_commit=False)
    stream = f"note{uid}-1"
    busy.interfere = 1
    with pytest.raises(ConcurrencyError):
        async with pool.acquire() as conn, conn.transaction():
            await execute(
                busy,
                stream,
                lambda state: [Noted("ours", 1)],
                fold=total,
                initial=0,
                conn=conn,
            )
    assert busy.reads == 1  # one attempt: no retry inside the transaction
    stored = [e.data.text for e in await busy.read_stream(stream)]
    assert stored[:1] == ["theirs"] and "ours" not in stored

    busy.interfere, busy.reads = 1, 0
    outside = await execute(busy, stream, lambda state: [Noted("ours", 1)], fold=total, initial=0)
    assert outside.state == 3 and busy.reads == 2  # outside a transaction: tried again
    await busy.close()


async def test_a_write_in_a_transaction_is_remembered_only_once_committed(
    pool: Pool, uid: str
) -> None:
    """Remembering what a rolled-back transaction decided would let a later write append
    on a state the stream never had, at a version another writer filled meanwhile."""
    store = PostgresEventStore(pool, group_commit=False)
    try:
        counter = Aggregate(Category(f"tally{uid}"), total, 0, remembers=True)
        stream = counter.stream("1")
        await counter.execute(store, "1", lambda state: [Noted("first", 1)])
        with contextlib.suppress(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await counter.execute(store, "1", lambda state: [Noted("undone", 100)], conn=conn)
                raise RuntimeError("rolled back")
        await store.append(stream, [Noted("theirs", 10)], 1)  # version 2, another writer
        done = await counter.execute(store, "1", lambda state: [Noted("ours", state)])
        assert [e.data.n for e in await store.read_stream(stream)] == [1, 10, 11]
        assert done.state == 22

        async with pool.acquire() as conn:
            async with conn.transaction():
                done = await counter.execute(
                    store, "1", lambda state: [Noted("ours", 1)], conn=conn
                )
            counter.remember(store, "1", done)  # committed: remembered now
        assert recall(store, stream, total) == Loaded(23, 4)

        # in a transaction the remembered state is a snapshot: the newer events fold on
        await store.append(stream, [Noted("theirs", 100)], 4)
        async with pool.acquire() as conn, conn.transaction():
            done = await counter.execute(store, "1", lambda state: [Noted("ours", 1)], conn=conn)
        assert (done.before.state, done.state, done.version) == (123, 124, 6)
        assert [e.stream_version for e in done.before.recorded] == [5]  # only the newer one
    finally:
        await store.close()

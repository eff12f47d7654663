"""Projections on the real database: incremental runs, rebuilds under load, replay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from eventstore import (
    ANY,
    EventRegistry,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    RebuildInProgress,
    Undecodable,
    rebuild,
    replay,
)
from eventstore.check import check_log
from eventstore.checkpoints import advance, load, lock, save
from eventstore.events import START, Position
from eventstore.parked import list_parked
from eventstore.pg import Pool
from eventstore.projection import (
    CHECKPOINTS_CHANNEL,
    UNKNOWN,
    Written,
    retry_parked,
    running,
)
from tests.conftest import StackEnv
from tests.samples import NOTES_DDL, Noted, Priced, expected_rows, notes_projection, table_rows


@pytest.fixture
async def notes(pool: Pool, uid: str) -> AsyncIterator[Projection]:
    projection = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=projection.table))
    yield projection
    await pool.execute(f"DROP TABLE IF EXISTS {projection.table}")


async def test_runner_applies_events_with_its_checkpoint(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    stream = f"note{uid}-a"
    await store.append(stream, [Noted("one", 1), Noted("two", 2)], ANY)
    await store.append(f"note{uid}-b", [Noted("gone"), Noted("delete")], ANY)
    runner = ProjectionRunner(store, notes, batch_size=3)

    assert await runner.catch_up() > 0
    assert await table_rows(pool, notes) == [
        {"stream_id": stream, "count": 2, "total": 3, "last_text": "two", "version": 2}
    ]
    assert await load(pool, notes.name) == runner.position
    assert await runner.catch_up() == 0  # nothing new: nothing read


async def test_runner_gives_read_your_writes(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    runner = ProjectionRunner(store, notes, poll_interval=5.0)  # only wake-ups make it fast
    async with running(runner):
        for i in range(5):
            result = await store.append(f"note{uid}-rw", [Noted(str(i), i)], ANY)
            await runner.wait_for(result.position, timeout=2.0)
            [row] = await table_rows(pool, notes)
            assert row["count"] == i + 1
            assert row["last_text"] == str(i)


async def test_a_watcher_gets_the_row_its_runner_wrote_and_is_told_to_read_otherwise(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    stream = f"note{uid}-watched"
    runner = ProjectionRunner(store, notes)
    await store.append(stream, [Noted("one", 1)], ANY)
    await runner.catch_up()
    watched, other = runner.watch(stream), runner.watch(f"note{uid}-other")
    await store.append(stream, [Noted("two", 2)], ANY)
    await runner.catch_up()
    [row] = await table_rows(pool, notes)
    written = watched.result()
    assert isinstance(written, Written) and written.row == row and written.row is not row
    assert not other.done()  # a row nobody wrote

    # the read model moved under the runner (a peer, a rebuild): read the row again
    watched = runner.watch(stream)
    await save(pool, notes.name, START)
    await store.append(stream, [Noted("three", 3)], ANY)
    await runner.catch_up()
    assert watched.result() is UNKNOWN and other.result() is UNKNOWN


async def test_a_runner_announces_its_batches_only_while_a_follower_says_hello(
    store: PostgresEventStore, pool: Pool, notes: Projection, test_env: StackEnv, uid: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(test_env.database_url)
    await listener.add_listener(CHECKPOINTS_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    other = PostgresEventStore(pool, dsn=test_env.database_url)  # another replica's
    leader = ProjectionRunner(store, notes, followed_for=1.0)
    follower = ProjectionRunner(other, notes, poll_interval=0.1)  # first hello after 0.1 s

    async def announced(text: str) -> bool:
        while not heard.empty():  # what came before (a batch's, a progress save's)
            heard.get_nowait()
        await store.append(f"note{uid}-a", [Noted(text, 1)], ANY)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while notes.name not in await heard.get():
                    pass
                return True
        return False

    async def until_announced(text: Callable[[int], str]) -> bool:
        for i in range(10):
            if await announced(text(i)):
                return True
        return False

    try:
        async with running(leader):
            assert await announced("at first")  # whoever may follow: told
            await asyncio.sleep(2.0)  # nobody said hello
            assert not await announced("alone")
            following = asyncio.create_task(follower.follow())
            try:  # once its hello is heard (after its first poll), batches are announced
                assert await until_announced(lambda i: f"followed {i}")
                await follower.wait_for(leader.position, timeout=2.0)
            finally:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
    finally:
        await listener.close()
        await other.close()


async def test_a_writer_that_appends_nothing_does_not_stall_readers(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, test_env: StackEnv
) -> None:
    """An event held behind the fence by a transaction that appends nothing: that commit
    sends no wake-up, so the runner must look again by itself, long before its poll."""
    runner = ProjectionRunner(store, notes, poll_interval=600.0)
    blocker = await asyncpg.connect(test_env.database_url)
    try:
        async with running(runner):
            await runner.wait_for(await store.head(), timeout=30)
            tx = blocker.transaction()
            await tx.start()
            await blocker.fetchval("SELECT pg_current_xact_id()")  # holds the fence
            result = await store.append(f"note{uid}-fenced", [Noted("late", 1)], ANY)
            await asyncio.sleep(0.2)  # the runner woke, read up to the fence, found nothing
            assert runner.position < result.position
            await tx.commit()  # no event, no NOTIFY
            await runner.wait_for(result.position, timeout=30)  # not the 600 s poll
    finally:
        await blocker.close()
    [row] = await table_rows(pool, notes)
    assert row["last_text"] == "late"


async def test_rebuild_matches_incremental_while_appends_continue(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    for i in range(300):
        await store.append(f"note{uid}-{i % 17}", [Noted(str(i), i)], ANY)
    runner = ProjectionRunner(store, notes, batch_size=50, poll_interval=0.05)
    stop = asyncio.Event()

    async def keep_appending() -> int:
        count = 0
        while not stop.is_set():
            text = "delete" if count % 41 == 40 else "x"
            await store.append(f"note{uid}-{count % 23}", [Noted(text, count)], ANY)
            count += 1
            await asyncio.sleep(0)
        return count

    async with running(runner):
        writer = asyncio.create_task(keep_appending())
        progress: list[int] = []
        try:
            first = await rebuild(store, notes, progress=progress.append, batch_size=64)
            second = await rebuild(store, notes, batch_size=1000)  # twice: index names, swap
        finally:
            stop.set()
            appended_during = await writer
        assert appended_during > 0
        assert sum(progress) == first.events
        assert second.position >= first.position
        head = await store.head()
        async with asyncio.timeout(20):
            while runner.position < head:
                await asyncio.sleep(0.02)

    assert await table_rows(pool, notes) == await expected_rows(store, notes)


async def test_rebuild_keeps_reads_working_and_replaces_a_corrupted_table(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    for i in range(40):
        await store.append(f"note{uid}-{i % 4}", [Noted(str(i), 1)], ANY)
    await ProjectionRunner(store, notes).catch_up()
    await pool.execute(f"UPDATE {notes.table} SET total = -1")  # a bug wrote nonsense

    result = await rebuild(store, notes)

    assert result.rows == 4
    rows = await table_rows(pool, notes)
    assert rows == await expected_rows(store, notes)
    assert all(r["total"] == 10 for r in rows)
    assert await load(pool, notes.name) == result.position


async def test_replay_prints_each_state_and_writes_nothing(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    stream = f"note{uid}-r"
    await store.append(stream, [Noted("a", 1), Noted("b", 2), Noted("delete")], ANY)
    await store.append(f"note{uid}-other", [Noted("z", 9)], ANY)
    before = await pool.fetchval("SELECT count(*) FROM checkpoints")

    steps = [
        (e.stream_version, key, row) async for e, key, row in replay(store, notes, stream=stream)
    ]

    assert [(v, k) for v, k, _ in steps] == [(1, stream), (2, stream), (3, stream)]
    assert steps[0][2] == {
        "stream_id": stream,
        "count": 1,
        "total": 1,
        "last_text": "a",
        "version": 1,
    }
    assert steps[1][2] is not None and steps[1][2]["total"] == 3
    assert steps[2][2] is None
    assert await table_rows(pool, notes) == []
    assert await pool.fetchval("SELECT count(*) FROM checkpoints") == before

    cutoff = (await store.read_stream(stream))[1].global_position
    upto = [e.global_position async for e, _, _ in replay(store, notes, to_position=cutoff)]
    assert upto and max(upto) <= cutoff


async def test_two_runners_share_one_projection_without_double_counting(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    runners = [ProjectionRunner(store, notes, batch_size=7, poll_interval=0.02) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        for i in range(120):
            await store.append(f"note{uid}-{i % 5}", [Noted(str(i), 1)], ANY)
        head = await store.head()
        async with asyncio.timeout(20):
            while await load(pool, notes.name) < head:
                await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    rows = await table_rows(pool, notes)
    assert [r["count"] for r in rows] == [24] * 5
    assert rows == await expected_rows(store, notes)


async def test_an_undecodable_event_elsewhere_does_not_stop_a_projection(
    pool: Pool, notes: Projection, uid: str
) -> None:
    """A projection decodes only its own categories: someone else's bad event is not its
    problem (a reader that decodes everything gets it as `Undecodable` and goes on)."""
    strict = EventRegistry()
    strict.register(Noted, name="TestNoted")
    strict.register(Priced, name=f"Poison{uid}")
    store = PostgresEventStore(pool, registry=strict)
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type, data)
           VALUES ($1, 1, gen_random_uuid(), $2, '{"not": "a priced event"}')""",
        f"poison{uid}-1",
        f"Poison{uid}",
    )
    await store.append(f"note{uid}-after", [Noted("still here", 7)], ANY)

    await ProjectionRunner(store, notes).catch_up()

    assert [r["total"] for r in await table_rows(pool, notes)] == [7]
    seen = [e async for batch in store.iter_all() for e in batch if uid in e.stream_id]
    assert isinstance(seen[0].data, Undecodable) and "does not fit" in seen[0].data.reason
    assert seen[1].data == Noted("still here", 7)


async def test_read_model_commits_do_not_wait_for_the_disk(pool: Pool, uid: str) -> None:
    """Projection batches commit with synchronous_commit off, for their transaction only."""
    name = f"cp-{uid}"
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert await lock(conn, name, synchronous_commit=False) == START
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        async with conn.transaction():
            await lock(conn, name)
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    position = Position(5, 7)
    await save(pool, name, position, synchronous_commit=False)
    assert await load(pool, name) == position


async def test_a_checkpoint_advances_only_from_where_its_writer_saw_it(
    pool: Pool, uid: str
) -> None:
    name, seen, ahead = f"cp-{uid}", Position(5, 7), Position(6, 9)
    async with pool.acquire() as conn:
        async with conn.transaction():  # no checkpoint yet: nothing to advance
            assert not await advance(conn, name, START, seen, synchronous_commit=False)
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        await save(conn, name, seen)
        async with conn.transaction():
            assert not await advance(conn, name, START, ahead)  # it holds another
            assert not await advance(conn, name, seen, ahead, version=2)  # other rows
            assert await load(conn, name) == seen
            assert await advance(conn, name, seen, ahead, synchronous_commit=False)
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await load(conn, name) == ahead
        assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_events_of_other_categories_cost_no_commit_per_batch(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    runner = ProjectionRunner(store, notes, batch_size=2, save_interval=3600)
    await runner.catch_up()
    saved = await load(pool, notes.name)
    for i in range(5):
        await store.append(f"other{uid}-{i}", [Noted("elsewhere")], ANY)
    head = await store.head()
    assert await runner.catch_up() >= 5
    assert runner.position == head  # read past them...
    assert await load(pool, notes.name) == saved  # ...without writing a checkpoint each time

    runner.save_interval = 0.0  # the deferred progress is stored on the next catch-up
    await runner.catch_up()
    assert await load(pool, notes.name) == head

    result = await store.append(f"note{uid}-x", [Noted("mine", 1)], ANY)
    await runner.catch_up()
    assert await load(pool, notes.name) == result.position
    assert [r["last_text"] for r in await table_rows(pool, notes)] == ["mine"]


async def test_one_rebuild_of_a_projection_at_a_time(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, test_env: StackEnv
) -> None:
    await store.append(f"note{uid}-r", [Noted("kept", 1)], ANY)
    other = await asyncpg.connect(test_env.database_url)  # another process's rebuild
    try:
        key = f"microshop:rebuild:{notes.name}"
        assert await other.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
        with pytest.raises(RebuildInProgress, match=notes.name):
            await rebuild(store, notes)
        await other.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
    finally:
        await other.close()
    result = await rebuild(store, notes)  # free again, and our lock was released after use
    assert result.rows == 1
    assert (await rebuild(store, notes)).rows == 1
    assert [r["last_text"] for r in await table_rows(pool, notes)] == ["kept"]


async def test_a_checkpoint_moved_back_is_re_read_from(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    """A crash may forget a runner's last asynchronous commits (rows and checkpoint
    together) while the runner keeps its place in memory: it must re-read from the
    stored checkpoint, not skip what was forgotten."""
    stream = f"note{uid}-crash"
    runner = ProjectionRunner(store, notes)
    await store.append(stream, [Noted("one", 1)], ANY)
    await runner.catch_up()
    before = await table_rows(pool, notes)
    checkpoint = await load(pool, notes.name)
    await store.append(stream, [Noted("two", 2)], ANY)
    await runner.catch_up()
    assert [r["count"] for r in await table_rows(pool, notes)] == [2]

    # what a crash that lost the last commit leaves behind
    [row] = before
    await pool.execute(
        f"UPDATE {notes.table} SET count = $2, total = $3, last_text = $4, version = $5"
        " WHERE stream_id = $1",
        row["stream_id"],
        row["count"],
        row["total"],
        row["last_text"],
        row["version"],
    )
    await save(pool, notes.name, checkpoint)

    await store.append(stream, [Noted("three", 3)], ANY)
    await runner.catch_up()
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    assert [r["count"] for r in await table_rows(pool, notes)] == [3]


async def test_an_event_the_projection_cannot_read_or_apply_is_parked_and_the_rest_flows(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    """A v99 of its own events and an event its fold throws on: each is parked in
    `projection_errors` (retried first, for the fold) and the read model goes on."""
    await store.append(f"note{uid}-a", [Noted("one", 1)], ANY)
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version,
                               data)
           VALUES ($1, 1, gen_random_uuid(), 'TestNoted', 99, '{"text": "future"}')""",
        f"note{uid}-future",
    )
    await store.append(f"note{uid}-b", [Noted("explode now", 5)], ANY)
    await store.append(f"note{uid}-a", [Noted("two", 2)], ANY)
    runner = ProjectionRunner(store, notes, retry_delay=0)
    await runner.catch_up()

    totals = {r["stream_id"]: r["total"] for r in await table_rows(pool, notes)}
    assert totals == {f"note{uid}-a": 3}
    errors = await list_parked(pool, notes.name)
    assert [(e.stream_id, e.schema_version, e.attempts) for e in errors] == [
        (f"note{uid}-future", 99, 1),
        (f"note{uid}-b", 1, 3),
    ]
    assert "newer than this code" in errors[0].error
    assert "ValueError: the fold cannot take 'explode now'" in errors[1].error
    assert runner.parked == 2
    assert await load(pool, notes.name) == (await store.head())
    await store.append(f"note{uid}-a", [Noted("three", 3)], ANY)
    await runner.catch_up()  # nothing parked stands in the way afterwards
    totals = {r["stream_id"]: r["total"] for r in await table_rows(pool, notes)}
    assert totals == {f"note{uid}-a": 6}


async def test_retry_applies_a_parked_event_once_its_cause_is_fixed(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    """Parked while the fold threw on it; once fixed, the retry folds its stream anew, so
    the later events of that stream (taken meanwhile) end up on top of it, in order."""
    await store.append(f"note{uid}-b", [Noted("explode", 5)], ANY)
    await store.append(f"note{uid}-b", [Noted("after", 1)], ANY)
    runner = ProjectionRunner(store, notes, retry_delay=0)
    await runner.catch_up()
    rows = {r["stream_id"]: r for r in await table_rows(pool, notes)}
    assert (rows[f"note{uid}-b"]["total"], rows[f"note{uid}-b"]["count"]) == (1, 1)

    still = await retry_parked(store, notes)
    assert still.applied == [] and "the fold cannot take" in still.failing[0][1]
    assert (await list_parked(pool, notes.name))[0].attempts == 4  # 3 by the runner, 1 now

    notes.explosive = False  # type: ignore[attr-defined]  # "deploy the fix"
    fixed = await retry_parked(store, notes)
    assert [e.stream_id for e in fixed.applied] == [f"note{uid}-b"] and fixed.failing == []
    row = {r["stream_id"]: r for r in await table_rows(pool, notes)}[f"note{uid}-b"]
    assert (row["total"], row["count"], row["last_text"], row["version"]) == (6, 2, "after", 2)
    assert await list_parked(pool, notes.name) == []


async def test_split_and_dropped_events_fold_alike_in_every_mode(
    pool: Pool, notes: Projection, uid: str
) -> None:
    """A row an upcaster splits reaches the read model as its events, one it drops not at
    all: incrementally, in a rebuild, in a replay and through `events check` alike."""
    reshaped = EventRegistry()
    reshaped.register(Noted, name="TestNoted")
    reshaped.upcaster(f"Bundle{uid}", from_version=1)(
        lambda data: [("TestNoted", 1, {"text": t, "n": 1}) for t in data["texts"]]
    )
    reshaped.upcaster(f"Touched{uid}", from_version=1)(lambda data: [])
    store = PostgresEventStore(pool, registry=reshaped)
    stream = f"note{uid}-s"
    rows = [
        (1, f"Bundle{uid}", '{"texts": ["a", "b", "c"]}'),
        (2, f"Touched{uid}", "{}"),
        (3, "TestNoted", '{"text": "d", "n": 5}'),
        (4, f"Touched{uid}", "{}"),
    ]
    for version, event_type, data in rows:
        await pool.execute(
            """INSERT INTO events (stream_id, stream_version, event_id, event_type, data)
               VALUES ($1, $2, gen_random_uuid(), $3, $4::text::jsonb)""",
            stream,
            version,
            event_type,
            data,
        )
    expected = {"stream_id": stream, "count": 4, "total": 8, "last_text": "d", "version": 3}

    await ProjectionRunner(store, notes, batch_size=2).catch_up()
    assert await table_rows(pool, notes) == [expected]
    await rebuild(store, notes, batch_size=3)
    assert await table_rows(pool, notes) == [expected] == await expected_rows(store, notes)
    steps = [(e.stream_version, row) async for e, _, row in replay(store, notes, stream=stream)]
    assert [v for v, _ in steps] == [1, 1, 1, 3] and steps[-1][1] == expected
    checked = await check_log(store)
    assert not [f for f in checked.failures if uid in f.stream_id]
    assert checked.counts[f"Bundle{uid}", 1] == 1 and checked.counts[f"Touched{uid}", 1] == 2

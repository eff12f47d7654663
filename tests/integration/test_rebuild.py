"""Rebuilds as an operator meets them: killed midway and resumed, names kept, statistics
fresh, nothing left behind."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from eventstore import (
    ANY,
    FoldFailed,
    Metadata,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    rebuild,
    rebuilding,
)
from eventstore.checkpoints import load
from eventstore.pg import Pool, create_pool
from eventstore.rebuilding import Interrupted, interrupted
from eventstore.store import sorts_bytewise
from microshop.migrate import migrate
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.integration.test_web_admin import MakeClient, admin_client, admin_config, page
from tests.pages import text_of
from tests.samples import NOTES_DDL, Noted, expected_rows, notes_projection, table_rows

ROOT = Path(__file__).resolve().parents[2]

# what the killed rebuild runs: small pages and chunks, slowed down so it can be caught
CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from eventstore import PostgresEventStore, create_pool
    import eventstore.rebuilding as rebuilding
    from tests.samples import notes_projection

    rebuilding.COPY_ROWS, rebuilding.PAGE_SIZE = 20, 50
    rebuilding.PARALLEL_FROM = 0  # with "parallel": forked workers for 1,500 events
    dsn, uid, mode = sys.argv[1:4]

    async def main():
        pool = await create_pool(dsn, max_size=2)
        store = PostgresEventStore(pool, dsn=dsn)
        if mode == "streams projection":
            from eventstore.streams import StreamsProjection
            projection = StreamsProjection()
        else:
            projection = notes_projection(uid, by_stream=mode != "log")
        await rebuilding.rebuild(
            store,
            projection,
            batch_size=50,
            progress=lambda n: time.sleep(0.05),  # workers wait for it too, in turn
            workers=2 if mode == "parallel" else 1,
        )

    asyncio.run(main())
    """
)


@pytest.fixture
async def notes(pool: Pool, uid: str) -> AsyncIterator[Projection]:
    projection = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=projection.table))
    yield projection
    await pool.execute(f"DROP TABLE IF EXISTS {projection.table}, {projection.table}__rebuild")
    await pool.execute("DELETE FROM projection_rebuilds WHERE projection = $1", projection.name)


async def write_notes(store: PostgresEventStore, uid: str, n: int, streams: int) -> None:
    for i in range(0, n, 10):
        batch = [Noted("delete" if (i + k) % 97 == 96 else str(i + k), i + k) for k in range(10)]
        await store.append(f"note{uid}-{i // 10 % streams:04d}", batch, ANY)


async def shape(pool: Pool, table: str) -> dict[str, Any]:
    """The names and definitions of `table`'s indexes and constraints."""
    indexes = await pool.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY 1", table
    )
    constraints = await pool.fetch(
        """SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = $1::regclass ORDER BY 1""",
        table,
    )
    return {"indexes": [tuple(r) for r in indexes], "constraints": [tuple(r) for r in constraints]}


async def test_rebuilds_keep_index_and_constraint_names_and_analyze(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    table = notes.table
    await pool.execute(
        f"CREATE INDEX {table}_by_total ON {table} (total DESC, stream_id);"
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_one_text UNIQUE (last_text, version);"
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_counted CHECK (count > 0)"
    )
    before = await shape(pool, table)
    assert len(before["indexes"]) == 3 and len(before["constraints"]) == 3
    await write_notes(store, uid, 400, streams=40)

    for _ in range(3):
        result = await rebuild(store, notes)
        assert await shape(pool, table) == before
    assert result.rows == len(await expected_rows(store, notes)) > 0
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    # the swapped-in table was analyzed before it served: the planner knows its size
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = $1", table) == (
        result.rows
    )
    assert await pool.fetchval("SELECT to_regclass($1)", f"{table}__rebuild") is None


def start_child(test_env: StackEnv, uid: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, test_env.database_url, uid, mode],
        cwd=ROOT,
        env=test_env.environ(PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_of(uid: str) -> list[int]:
    """The processes whose command line holds `uid` (a rebuild child and its workers)."""
    found = subprocess.run(["pgrep", "-f", uid], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


async def kill_midway(pool: Pool, child: subprocess.Popen[str], projection: str, phase: str) -> int:
    """SIGKILL `child` once its rebuild has committed some progress in `phase`."""
    try:
        async with asyncio.timeout(60):
            while True:
                assert child.poll() is None, child.communicate()[1]
                row = await pool.fetchrow(
                    "SELECT phase, events FROM projection_rebuilds WHERE projection = $1",
                    projection,
                )
                if row is not None and row["phase"] == phase and row["events"] > 0:
                    break
                await asyncio.sleep(0.02)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.communicate()  # waits, closes the pipe
    done: int = await pool.fetchval(
        "SELECT events FROM projection_rebuilds WHERE projection = $1", projection
    )
    return done


async def left_behind(pool: Pool, projection: str) -> Interrupted:
    """What the killed rebuild of `projection` left, once the server has noticed the kill
    (until its session ends, the rebuild's lock is held: it counts as running)."""
    async with asyncio.timeout(10):
        while not (found := [i for i in await interrupted(pool) if i.projection == projection]):
            await asyncio.sleep(0.05)
    [left] = found
    return left


@pytest.mark.parametrize("mode", ["streams", "log", "parallel"])
async def test_a_killed_rebuild_resumes_to_what_an_uninterrupted_one_makes(
    store: PostgresEventStore,
    pool: Pool,
    notes: Projection,
    uid: str,
    test_env: StackEnv,
    mode: str,
) -> None:
    projection = notes_projection(uid, by_stream=mode != "log")
    phase = "log" if mode == "log" else "streams"
    await write_notes(store, uid, 1500, streams=150)
    await ProjectionRunner(store, projection).catch_up()
    await pool.execute(f"UPDATE {projection.table} SET total = -1")  # to be repaired

    child = start_child(test_env, uid, mode)
    done = await kill_midway(pool, child, projection.name, phase)

    left = await left_behind(pool, projection.name)
    assert (left.shadow, left.phase, left.events) == (f"{projection.table}__rebuild", phase, done)
    parts = await pool.fetch(
        "SELECT done, events FROM projection_rebuild_parts WHERE projection = $1", left.projection
    )
    assert sum(p["events"] for p in parts) == (done if phase == "streams" else 0)
    if mode == "parallel":  # cut in parts, whose workers died with the killed rebuild
        assert len(parts) == 2 * rebuilding.PARTS_PER_WORKER and not all(p["done"] for p in parts)
        async with asyncio.timeout(10):
            while processes_of(uid):
                await asyncio.sleep(0.05)
    assert left.total == 1500
    assert 0 < done < left.total
    assert await pool.fetchval("SELECT to_regclass($1)", left.shadow) is not None
    assert {r["total"] for r in await table_rows(pool, projection)} == {-1}  # untouched
    await write_notes(store, uid, 200, streams=170)  # more arrives after the kill

    progress: list[int] = []
    result = await rebuild(
        store, projection, resume=True, progress=progress.append, workers=2 if parts else 1
    )

    assert result.resumed and not result.discarded
    assert progress[0] == done  # carried on from the killed run's last commit...
    assert result.events == 1700 and sum(progress) == 1700  # ...and counted its part
    assert await table_rows(pool, projection) == await expected_rows(store, projection)
    assert await load(pool, projection.name) == result.position == await store.head()
    assert [i for i in await interrupted(pool) if i.projection == projection.name] == []
    assert await pool.fetchval("SELECT to_regclass($1)", left.shadow) is None


async def test_a_rebuild_without_resume_starts_over(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, test_env: StackEnv
) -> None:
    await write_notes(store, uid, 1500, streams=150)
    child = start_child(test_env, uid, "streams")
    await kill_midway(pool, child, notes.name, "streams")
    await left_behind(pool, notes.name)

    result = await rebuild(store, notes)

    assert result.discarded and not result.resumed
    assert result.events == 1500
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM projection_rebuilds WHERE projection = $1", notes.name
        )
        == 0
    )


async def test_status_tells_of_an_interrupted_rebuild_and_resume_finishes_it(
    aiohttp_client: MakeClient, store: PostgresEventStore, pool: Pool, uid: str, test_env: StackEnv
) -> None:
    await write_notes(store, uid, 1500, streams=150)
    child = start_child(test_env, uid, "streams projection")
    await kill_midway(pool, child, "streams", "streams")
    await left_behind(pool, "streams")

    admin = await admin_client(aiohttp_client, admin_config(test_env, uid))
    shown = text_of(await page(admin, "/admin/projections"))
    assert "Interrupted rebuilds" in shown and "streams__rebuild" in shown

    status = await asyncio.to_thread(microshop, test_env, "projections", "status")
    assert status.returncode == 0, status.stderr
    assert "an interrupted rebuild of streams left table streams__rebuild" in status.stdout
    assert "projections rebuild streams --resume" in status.stdout

    resumed = await asyncio.to_thread(
        microshop, test_env, "projections", "rebuild", "streams", "--resume"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed the interrupted rebuild of streams" in resumed.stdout
    assert [i for i in await interrupted(pool) if i.projection == "streams"] == []
    status = await asyncio.to_thread(microshop, test_env, "projections", "status")
    assert "interrupted" not in status.stdout
    assert "Interrupted rebuilds" not in text_of(await page(admin, "/admin/projections"))


def in_parallel(monkeypatch: pytest.MonkeyPatch) -> int:
    """Workers for a rebuild of a small log: two processes, ranges of a few streams."""
    monkeypatch.setattr(rebuilding, "PARALLEL_FROM", 0)
    monkeypatch.setattr(rebuilding, "COPY_ROWS", 7)
    monkeypatch.setattr(rebuilding, "PAGE_SIZE", 40)
    return 2


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> int:
    return in_parallel(monkeypatch)


@pytest.mark.parametrize("mode", ["streams", "log", "parallel"])
async def test_a_fold_that_raises_stops_the_rebuild_resumably(
    store: PostgresEventStore,
    pool: Pool,
    notes: Projection,
    uid: str,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projection: Any = notes_projection(uid, by_stream=mode != "log")
    workers = in_parallel(monkeypatch) if mode == "parallel" else 1
    await write_notes(store, uid, 300, streams=30)
    for stream in ("bad", "0004x", "0017x"):  # in any part, a worker's or this process's
        await store.append(f"note{uid}-{stream}", [Noted(f"explode {stream}")], ANY)
    await ProjectionRunner(store, projection).catch_up()  # parks them, goes on
    before = await table_rows(pool, projection)

    with pytest.raises(FoldFailed, match=r"cannot fold .*ValueError: the fold cannot take"):
        await rebuild(store, projection, workers=workers)
    assert await table_rows(pool, projection) == before  # nothing swapped in
    assert [i.projection for i in await interrupted(pool)].count(projection.name) == 1

    projection.explosive = False  # the fix is deployed
    result = await rebuild(store, projection, resume=True, workers=workers)
    assert result.resumed and result.events == 303
    assert await table_rows(pool, projection) == await expected_rows(store, projection)


@pytest.mark.parametrize("reads_metadata", [True, False])
async def test_a_model_that_reads_no_metadata_is_rebuilt_without_it(
    store: PostgresEventStore, notes: Projection, uid: str, reads_metadata: bool
) -> None:
    """A by-stream rebuild leaves out what the model says it never reads: the same rows,
    the events folded with empty metadata (and with theirs when the model reads it)."""
    await store.append(
        f"note{uid}-0001",
        [Noted("a", 1), Noted("b", 2)],
        ANY,
        metadata=Metadata(correlation_id="corr-rebuild", actor="someone"),
    )
    seen: list[Metadata] = []
    apply = notes.apply

    def watching(row: Any, event: Any) -> Any:
        seen.append(event.metadata)
        return apply(row, event)

    notes.reads_metadata = reads_metadata  # type: ignore[misc]
    notes.apply = watching  # type: ignore[method-assign]
    result = await rebuild(store, notes)
    folded, seen[:] = list(seen), []
    assert result.events == 2
    assert await table_rows(store.pool, notes) == await expected_rows(store, notes)
    expected = {"corr-rebuild"} if reads_metadata else {None}
    assert {m.correlation_id for m in folded} == expected and len(folded) == 2


async def test_a_rebuild_in_several_processes_makes_what_one_makes(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, parallel: int
) -> None:
    await write_notes(store, uid, 1200, streams=90)
    progress: list[int] = []

    result = await rebuild(store, notes, workers=parallel, progress=progress.append)

    assert len(result.worker_peaks_kb) == 1 and result.worker_peaks_kb[0] > 0  # one forked
    assert result.events == sum(progress) == 1200
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    single = await rebuild(store, notes, workers=1)
    assert single.worker_peaks_kb == () and single.rows == result.rows


async def test_the_parts_cover_every_stream_once(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    """Cut points fall between streams, about as many events apart, however uneven the
    streams (one holds a third of the log)."""
    await write_notes(store, uid, 600, streams=60)
    await store.append(f"note{uid}-0030", [Noted(str(n), n) for n in range(300)], ANY)
    async with pool.acquire() as conn:
        cuts = await rebuilding._cuts(conn, notes, 6)
        scans = await rebuilding._scans(conn, rebuilding._streams_of(notes))
    streams = [
        r["stream_id"]
        for r in await pool.fetch(
            "SELECT stream_id, count(*) FROM events WHERE stream_id LIKE $1 GROUP BY 1 ORDER BY 1",
            f"note{uid}-%",
        )
    ]
    assert cuts == sorted(set(cuts)) and set(cuts) <= set(streams)
    assert 3 <= len(cuts) <= 5  # the big stream swallows a cut or two
    bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
    assert [len(rebuilding._within(scans, low, high)) for low, high in bounds] == [1] * len(bounds)
    parts = [
        [s for s in streams if (low is None or s >= low) and (high is None or s < high)]
        for low, high in bounds
    ]
    assert sorted(s for part in parts for s in part) == streams  # each stream in one part


async def test_events_a_worker_cannot_read_are_told_here(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, parallel: int
) -> None:
    await write_notes(store, uid, 400, streams=40)
    unreadable = []
    for n in (3, 17, 33):  # a newer schema than this code knows, in several parts
        await pool.execute(
            """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                   schema_version, data)
               VALUES ($1, 100, gen_random_uuid(), 'TestNoted', 99, '{}')""",
            f"note{uid}-{n:04d}",
        )
        unreadable.append(f"note{uid}-{n:04d}")
    told: list[Any] = []
    await rebuild(store, notes, workers=1, unreadable=told.append)
    in_one = await table_rows(pool, notes)
    told.clear()

    result = await rebuild(store, notes, workers=parallel, unreadable=told.append)

    assert sorted(e.stream_id for e in told) == unreadable  # each once, whoever read it
    assert all(e.schema_version == 99 for e in told)
    assert result.events == 403 and len(result.worker_peaks_kb) == 1
    assert await table_rows(pool, notes) == in_one  # left out alike

    def strict(event: Any) -> None:
        raise RuntimeError(f"cannot read {event.stream_id}")

    with pytest.raises(RuntimeError, match="cannot read"):
        await rebuild(store, notes, workers=parallel, unreadable=strict)
    assert await pool.fetchval("SELECT to_regclass($1)", f"{notes.table}__rebuild") is None
    assert [i for i in await interrupted(pool) if i.projection == notes.name] == []


async def test_cuts_come_from_the_planners_statistics_when_they_have_enough(
    pool: Pool, uid: str
) -> None:
    """Equal-frequency histogram bounds of `stream_id` make ranges of about as many events
    at no cost; no statistics, too few bounds among the streams, or long streams among
    them (the histogram leaves the most common values out) mean counting."""
    schema = f"cuts_{uid}"
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            await conn.execute(f"SET search_path = {schema}")
            await conn.execute("CREATE TABLE events (LIKE public.events INCLUDING DEFAULTS)")
            await conn.execute(
                """INSERT INTO events (global_position, tx_id, stream_id, stream_version,
                       event_id, event_type, data)
                   SELECT n, '1'::xid8, 'note-' || lpad(n::text, 6, '0'), 1,
                          gen_random_uuid(), 'Noted', '{}'::jsonb
                   FROM generate_series(1, 60000) AS n
                   UNION ALL
                   SELECT n, '1'::xid8, 'long-' || n % 5, n, gen_random_uuid(), 'Other',
                          '{}'::jsonb
                   FROM generate_series(60001, 63000) AS n"""
            )
            assert await rebuilding._estimated_cuts(conn, {"note"}, 4) is None  # no statistics
            await conn.execute("ANALYZE events")
            cuts = await rebuilding._estimated_cuts(conn, {"note"}, 4)
            assert cuts is not None and len(cuts) == 3 and cuts == sorted(cuts)
            assert all(c.startswith("note-") for c in cuts)
            sizes = [
                await conn.fetchval(
                    "SELECT count(*) FROM events WHERE stream_id LIKE 'note-%'"
                    " AND ($1::text IS NULL OR stream_id >= $1)"
                    " AND ($2::text IS NULL OR stream_id < $2)",
                    low,
                    high,
                )
                for low, high in itertools.pairwise([None, *cuts, None])
            ]
            assert sum(sizes) == 60000 and all(12000 < n < 18000 for n in sizes), sizes
            assert await rebuilding._estimated_cuts(conn, {"note"}, 1000) is None  # too few
            assert await rebuilding._estimated_cuts(conn, {"long"}, 2) is None  # most common
        finally:
            await conn.execute(f"RESET search_path; DROP SCHEMA {schema} CASCADE")


async def test_a_resumed_parallel_rebuild_under_a_linguistic_collation_folds_each_stream_once(
    test_env: StackEnv, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ICU's collation `note-a010` sorts before `note-A011`, under Python's order
    after: the resumed parts must go on from where the database says they stopped."""
    workers = in_parallel(monkeypatch)
    name = f"rebuild_icu_{uid}"
    admin = await asyncpg.connect(test_env.database_url, database="postgres")
    await admin.execute(
        f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'"
        " LOCALE 'C.UTF-8'"
    )
    dsn = urllib.parse.urlsplit(test_env.database_url)._replace(path=f"/{name}").geturl()
    try:
        await migrate(dsn, create=False)
        pool = await create_pool(dsn, max_size=4)
        store = PostgresEventStore(pool, dsn=dsn)
        try:
            assert not await sorts_bytewise(pool)
            projection = notes_projection(uid)
            await pool.execute(NOTES_DDL.format(table=projection.table))
            for i in range(240):  # a010, A011, b012, B013...: cases interleaved
                letter = "aAbBcC"[i % 6]
                await store.append(f"note{uid}-{letter}{i:03d}", [Noted(str(i), i)], ANY)
            stopped: list[int] = []

            def stop_midway(n: int) -> None:
                stopped.append(n)
                if sum(stopped) > 100:
                    raise InterruptedError("stopped midway")  # as a kill would

            with pytest.raises(InterruptedError):
                await rebuild(store, projection, workers=workers, progress=stop_midway)
            left = await pool.fetch(
                "SELECT after_stream, done FROM projection_rebuild_parts WHERE projection = $1",
                projection.name,
            )
            assert any(r["after_stream"] for r in left) and not all(r["done"] for r in left)

            result = await rebuild(store, projection, workers=workers, resume=True)

            assert result.resumed and result.events == 240

            def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return sorted(rows, key=lambda row: str(row["stream_id"]))  # Python's order

            rows = by_id(await table_rows(pool, projection))
            assert len(rows) == 240 and rows == by_id(await expected_rows(store, projection))

            # a part from a000 that got as far as A001 goes on at a006, next in ICU's order
            part = rebuilding.Part(0, f"note{uid}-a000", None, after_stream=f"note{uid}-A001")
            async with pool.acquire() as conn:
                pages = rebuilding._stream_pages(store, conn, projection, await store.head(), part)
                first = (await anext(pages))[0]
                await pages.aclose()
            assert first.stream_id == f"note{uid}-a006"
        finally:
            await store.close()
            await pool.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()

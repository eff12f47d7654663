"""Verifying read models against the log: drift found, only it repaired, no false alarms."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import ANY, PostgresEventStore, Projection, ProjectionRunner, create_pool
from eventstore.pg import Pool
from eventstore.projection import running
from eventstore.verifying import sample, verify
from microshop.app import make_app
from microshop.workers import RUNNERS, projection_context
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.samples import NOTES_DDL, Noted, expected_rows, notes_projection, table_rows

MakeClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture(params=["by stream", "in log order"])
async def notes(request: pytest.FixtureRequest, pool: Pool, uid: str) -> AsyncIterator[Projection]:
    projection = notes_projection(uid, by_stream=request.param == "by stream")
    await pool.execute(NOTES_DDL.format(table=projection.table))
    yield projection
    await pool.execute(f"DROP TABLE IF EXISTS {projection.table}")


async def write_notes(store: PostgresEventStore, uid: str, streams: int, each: int) -> None:
    for n in range(each):
        for s in range(streams):
            await store.append(f"note{uid}-{s:03d}", [Noted(f"{s}.{n}", n)], ANY)


async def versions(pool: Pool, projection: Projection) -> dict[str, Any]:
    """Each row's xmin: the transaction that last wrote it."""
    rows = await pool.fetch(f"SELECT stream_id, xmin::text FROM {projection.table}")
    return {r[0]: r[1] for r in rows}


async def corrupt(pool: Pool, projection: Projection, uid: str) -> dict[str, str]:
    """Three kinds of drift: a wrong value, a lost row, a row the log never made."""
    table = projection.table
    await pool.execute(f"UPDATE {table} SET total = -5 WHERE stream_id = $1", f"note{uid}-003")
    await pool.execute(f"DELETE FROM {table} WHERE stream_id = $1", f"note{uid}-007")
    await pool.execute(f"INSERT INTO {table} VALUES ($1, 1, 1, 'ghost', 1)", f"note{uid}-999")
    return {
        f"note{uid}-003": "total",
        f"note{uid}-007": "missing",
        f"note{uid}-999": "extra",
    }


async def test_verify_finds_each_drifted_row_and_fix_repairs_only_those(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    await write_notes(store, uid, streams=30, each=4)
    await ProjectionRunner(store, notes).catch_up()
    clean = await verify(store, notes)
    assert clean.ok and clean.rows == 30 and clean.events == 120
    assert clean.position == await store.head()

    drift = await corrupt(pool, notes, uid)
    untouched = {k: v for k, v in (await versions(pool, notes)).items() if k not in drift}

    found = await verify(store, notes)
    assert not found.ok and found.differing == 3
    by_key = {d.key: d for d in found.differences}
    assert set(by_key) == set(drift)
    assert by_key[f"note{uid}-003"].columns == ["total"]
    assert by_key[f"note{uid}-007"].table is None and by_key[f"note{uid}-007"].log is not None
    assert by_key[f"note{uid}-999"].log is None
    assert await pool.fetchval(f"SELECT total FROM {notes.table} WHERE total = -5") == -5

    fixed = await verify(store, notes, fix=True)
    assert sorted(fixed.repaired) == sorted(drift)
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    after = await versions(pool, notes)
    assert {k: after[k] for k in untouched} == untouched  # no other row was written
    assert (await verify(store, notes)).ok


async def test_a_runner_applying_meanwhile_causes_no_false_difference(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str
) -> None:
    await write_notes(store, uid, streams=20, each=5)
    runner = ProjectionRunner(store, notes, batch_size=7, poll_interval=0.01)
    stop = asyncio.Event()

    async def keep_writing() -> int:
        count = 0
        while not stop.is_set():
            await store.append(f"note{uid}-{count % 25:03d}", [Noted("more", 1)], ANY)
            count += 1
            await asyncio.sleep(0)
        return count

    async with running(runner):
        await runner.wait_for(await store.head(), timeout=30)
        writer = asyncio.create_task(keep_writing())
        try:
            results = [await verify(store, notes, batch_size=11) for _ in range(3)]
        finally:
            stop.set()
            written = await writer
    assert written > 0
    assert [r.differing for r in results] == [0, 0, 0]


async def test_fix_accounts_for_what_the_runner_applied_after_the_snapshot(
    store: PostgresEventStore, pool: Pool, notes: Projection, uid: str, test_env: StackEnv
) -> None:
    await write_notes(store, uid, streams=10, each=3)
    await ProjectionRunner(store, notes).catch_up()
    drift = await corrupt(pool, notes, uid)

    def the_shop_goes_on(n: int) -> None:
        """Once the verify has its snapshot: more events, applied by the runner (on a
        thread of its own, so they are in before the verify goes on)."""

        async def more() -> None:
            other = await create_pool(test_env.database_url, max_size=2)
            try:
                shop = PostgresEventStore(other)
                for stream in ("003", "004", "100"):
                    await shop.append(f"note{uid}-{stream}", [Noted("later", 100)], ANY)
                await ProjectionRunner(shop, notes).catch_up()
                await shop.close()
            finally:
                await other.close()

        thread = threading.Thread(target=asyncio.run, args=(more(),))
        thread.start()
        thread.join()

    fixed = await verify(store, notes, fix=True, expect=the_shop_goes_on)

    assert fixed.position < await store.head()  # compared at the snapshot ...
    assert sorted(fixed.repaired) == sorted(drift)  # ... repaired at the runner's position
    assert await table_rows(pool, notes) == await expected_rows(store, notes)
    assert (await verify(store, notes)).ok


async def test_the_cli_lists_differing_keys_exits_1_and_fix_repairs(
    store: PostgresEventStore, pool: Pool, uid: str, test_env: StackEnv
) -> None:
    await store.append(f"vfy{uid}-a", [Noted("one", 1), Noted("two", 2)], ANY)
    rebuilt = await asyncio.to_thread(microshop, test_env, "projections", "rebuild", "streams")
    assert rebuilt.returncode == 0, rebuilt.stderr
    ok = await asyncio.to_thread(microshop, test_env, "projections", "verify", "streams")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "rows match the log up to position" in ok.stdout

    await pool.execute("UPDATE streams SET event_count = 99 WHERE stream_id = $1", f"vfy{uid}-a")
    found = await asyncio.to_thread(microshop, test_env, "projections", "verify", "streams")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "1 of" in found.stdout and f"stream_id=vfy{uid}-a: event_count table=99 log=2" in (
        found.stdout
    )

    fixed = await asyncio.to_thread(
        microshop, test_env, "projections", "verify", "streams", "--fix"
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"repaired 1 row: vfy{uid}-a" in fixed.stdout
    count = await pool.fetchval(
        "SELECT event_count FROM streams WHERE stream_id = $1", f"vfy{uid}-a"
    )
    assert count == 2


async def test_a_sample_of_streams_finds_a_drifted_row(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    notes = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=notes.table))
    await write_notes(store, uid, streams=30, each=4)
    await ProjectionRunner(store, notes).catch_up()
    span = await pool.fetchrow(
        "SELECT min(global_position), max(global_position) FROM events WHERE stream_id LIKE $1",
        f"note{uid}-%",
    )
    assert span is not None
    first, last = span
    picks, among = last - first + 1, (first, last)  # each of its events picked once

    clean = await sample(store, notes, picks, among=among)
    assert (clean.streams, clean.rows, clean.differing) == (30, 30, [])
    drift = await corrupt(pool, notes, uid)
    found = await sample(store, notes, picks, among=among)
    # the extra row has no stream: only `verify` sees those
    assert sorted(found.differing) == sorted(k for k, kind in drift.items() if kind != "extra")
    few = await sample(store, notes, streams=5)
    assert 1 <= few.streams <= 5 and few.rows == few.streams
    with pytest.raises(ValueError, match="not keyed by stream"):
        await sample(store, notes_projection(uid, by_stream=False))


async def test_services_sample_their_read_models_and_count_drift(
    aiohttp_client: MakeClient, store: PostgresEventStore, pool: Pool, uid: str, test_env: StackEnv
) -> None:
    notes = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=notes.table))
    await write_notes(store, uid, streams=3, each=2)
    config = test_env.config(namespace=f"{test_env.namespace}-{uid}")
    app = make_app(config, "sample-test", contexts=[projection_context(notes, sample_interval=0.1)])
    client = await aiohttp_client(app)
    await app[RUNNERS][notes.name].wait_for(await store.head(), timeout=10)
    await pool.execute(f"UPDATE {notes.table} SET total = -1")  # every row drifts

    drifted = f'projection_sampled_drift_total{{projection="{notes.name}",service="sample-test"}}'
    async with asyncio.timeout(20):
        while drifted not in (text := await (await client.get("/metrics")).text()):
            await asyncio.sleep(0.1)
    assert "projection_sampled_rows_total" in text

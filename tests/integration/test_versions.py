"""Versioned read models (blue/green): the next version built beside the live one while it
serves, then promoted with no failed read; the old version's writers stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import ANY, PostgresEventStore, Projection, ProjectionRunner, RecordedEvent, Row
from eventstore.checkpoints import VersionChanged, version_of
from eventstore.pg import Pool
from eventstore.verifying import verify
from eventstore.versions import (
    NotBuilt,
    build_next,
    keeping,
    live_columns,
    next_version,
    promote,
)
from microshop.app import make_app
from microshop.appkeys import STORE
from microshop.workers import RUNNERS, projection_context
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.samples import NOTES_DDL, Noted, expected_rows, notes_projection, table_rows

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

# version 2 of the notes read model adds a column, and an index on it
NOTES_V2_DDL = """
CREATE TABLE {table} (
    stream_id text PRIMARY KEY, count integer NOT NULL, total bigint NOT NULL,
    last_text text, version integer NOT NULL, doubled bigint NOT NULL DEFAULT 0);
CREATE INDEX {table}_by_doubled ON {table} (doubled)"""


def notes_v2(v1: Projection) -> Projection:
    base: Any = type(v1)

    class NotesV2(base):  # type: ignore[misc]
        version = 2
        ddl = NOTES_V2_DDL
        columns = (*base.columns, "doubled")

        def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
            after: Row | None = super().apply(row, event)
            if after is not None:
                after["doubled"] = after["total"] * 2
            return after

    projection: Projection = NotesV2()
    return projection


@pytest.fixture
async def v1(pool: Pool, uid: str) -> AsyncIterator[Projection]:
    projection = notes_projection(uid)
    await pool.execute(NOTES_DDL.format(table=projection.table))
    yield projection
    table = projection.table
    await pool.execute(f"DROP TABLE IF EXISTS {table}, {table}__v2, {table}__v2__rebuild")


async def write_notes(store: PostgresEventStore, uid: str, n: int, streams: int) -> None:
    for i in range(n):
        await store.append(f"note{uid}-{i % streams:03d}", [Noted(str(i), i)], ANY)


@contextlib.asynccontextmanager
async def reading(pool: Pool, table: str) -> AsyncIterator[dict[str, Any]]:
    """Read the live table in a loop the whole time: how many reads, which failed."""
    seen: dict[str, Any] = {"reads": 0, "errors": [], "columns": set()}
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY stream_id LIMIT 5")
                seen["reads"] += 1
                seen["columns"] |= {tuple(r.keys()) for r in rows}
            except Exception as exc:
                seen["errors"].append(repr(exc))
            await asyncio.sleep(0)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        stop.set()
        await task


async def test_the_next_version_is_built_beside_and_promoted_with_no_failed_read(
    store: PostgresEventStore, pool: Pool, v1: Projection, uid: str
) -> None:
    v2 = notes_v2(v1)
    await write_notes(store, uid, 200, streams=20)
    await ProjectionRunner(store, v1).catch_up()
    with pytest.raises(NotBuilt, match="not built yet"):
        await promote(store, v2)

    following = await build_next(store, v2)
    assert following.table == f"{v1.table}__v2"
    assert await version_of(pool, following.name) == 2 and await version_of(pool, v1.name) == 1
    assert (await verify(store, following)).ok  # what `projections verify` checks meanwhile
    keeper = ProjectionRunner(store, keeping(v2, await live_columns(pool, v1.table), 1))
    follower = ProjectionRunner(store, following)

    async with reading(pool, v1.table) as seen:
        await write_notes(store, uid, 50, streams=25)  # both versions keep up
        await keeper.catch_up()
        await follower.catch_up()
        assert await table_rows(pool, v1) == await expected_rows(store, v1)  # still serving
        await write_notes(store, uid, 30, streams=30)  # not applied by any runner yet
        await asyncio.sleep(0.1)
        done = await promote(store, v2)
        await asyncio.sleep(0.1)
    assert seen["errors"] == [] and seen["reads"] > 20
    assert len(seen["columns"]) == 2  # the reads saw v1's columns, then v2's

    assert (done.version, done.retired, done.rows) == (2, 1, 30)
    assert done.position == await store.head()
    assert await version_of(pool, v1.name) == 2
    assert await table_rows(pool, v2) == await expected_rows(store, v2)
    assert all(r["doubled"] == 2 * r["total"] for r in await table_rows(pool, v2))
    names = {
        r[0]
        for r in await pool.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", v1.table)
    }
    assert names == {f"{v1.table}_pkey", f"{v1.table}_by_doubled"}
    assert await pool.fetchval("SELECT to_regclass($1)", following.table) is None
    assert (
        await pool.fetchval("SELECT count(*) FROM checkpoints WHERE name = $1", following.name) == 0
    )

    await store.append(f"note{uid}-new", [Noted("after", 1)], ANY)
    for old in (keeper, follower):  # the old version's writers stop, writing nothing
        with pytest.raises(VersionChanged):
            await old.catch_up()
    assert await ProjectionRunner(store, v2).catch_up() > 0
    assert await table_rows(pool, v2) == await expected_rows(store, v2)
    with pytest.raises(NotBuilt, match="at version 2 already"):
        await promote(store, v2)


async def test_a_service_with_the_new_version_serves_the_old_table_until_promoted(
    aiohttp_client: MakeClient,
    store: PostgresEventStore,
    pool: Pool,
    v1: Projection,
    uid: str,
    test_env: StackEnv,
) -> None:
    v2 = notes_v2(v1)
    await write_notes(store, uid, 60, streams=6)
    await ProjectionRunner(store, v1).catch_up()
    config = test_env.config(namespace=f"{test_env.namespace}-{uid}")
    app = make_app(config, "versions-test", contexts=[projection_context(v2)])
    await aiohttp_client(app)

    following = next_version(v2)
    async with asyncio.timeout(30):  # the service builds version 2 by itself
        while not await pool.fetchval("SELECT 1 FROM checkpoints WHERE name = $1", following.name):
            await asyncio.sleep(0.05)
    result = await app[STORE].append(f"note{uid}-000", [Noted("live", 1000)], ANY)
    await app[RUNNERS][v1.name].wait_for(result.position, timeout=10)  # the old table serves
    assert "doubled" not in await live_columns(pool, v1.table)
    assert await table_rows(pool, v1) == await expected_rows(store, v1)

    nothing = await asyncio.to_thread(microshop, test_env, "projections", "promote", "streams")
    assert nothing.returncode == 1
    assert "Error: streams is at version 1 already; this code has version 1" in nothing.stderr

    done = await promote(store, v2)
    assert done.version == 2
    result = await app[STORE].append(f"note{uid}-000", [Noted("promoted", 1)], ANY)
    async with asyncio.timeout(20):  # the service now runs version 2 on the live table
        while True:
            runner = app[RUNNERS][v1.name]
            if runner.version == 2 and runner.position >= result.position:
                break
            await asyncio.sleep(0.05)
    assert await table_rows(pool, v2) == await expected_rows(store, v2)

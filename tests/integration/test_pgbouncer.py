"""The event store behind PgBouncer in transaction mode: pools through it (no prepared
statements kept), each process's session connection and session-long work direct."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from eventstore import ANY, PostgresEventStore, ProjectionRunner, create_pool, rebuild
from eventstore.pg import Pool
from eventstore.verifying import verify
from tests.conftest import StackEnv
from tests.contract.eventstore import EventStoreContract
from tests.pgbouncer import running_pgbouncer, through
from tests.samples import NOTES_DDL, Noted, expected_rows, notes_projection, table_rows


@pytest.fixture(scope="module")
def bouncer() -> Iterator[int]:
    with running_pgbouncer() as bouncer:
        yield bouncer.port


@pytest.fixture
async def bounced_pool(bouncer: int, test_env: StackEnv) -> AsyncIterator[Pool]:
    pool = await create_pool(
        through(test_env.database_url, bouncer),
        max_size=4,
        statement_cache_size=0,
        idle_in_transaction_timeout_ms=None,
    )
    yield pool
    await pool.close()


@pytest.fixture
async def store(bounced_pool: Pool, test_env: StackEnv) -> AsyncIterator[PostgresEventStore]:
    store = PostgresEventStore(bounced_pool, dsn=test_env.database_url, pooler=True)
    yield store
    await store.close()


class TestEventStoreThroughPgBouncer(EventStoreContract):
    """The whole contract, the pool going through PgBouncer in transaction mode."""


async def test_runner_rebuild_and_verify_work_through_the_pooler(
    store: PostgresEventStore, uid: str
) -> None:
    projection = notes_projection(uid)
    await store.pool.execute(NOTES_DDL.format(table=projection.table))
    for i in range(30):
        await store.append(f"note{uid}-{i % 7}", [Noted(f"n{i}", n=i)], ANY)
    runner = ProjectionRunner(store, projection)
    task = asyncio.create_task(runner.lead_or_follow())
    try:
        await runner.wait_for(await store.head(), timeout=15)
        assert runner.leading  # its session (direct) took the leader lock
        assert await table_rows(store.pool, projection) == await expected_rows(store, projection)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await store.pool.execute(f"UPDATE {projection.table} SET total = -1 WHERE stream_id LIKE '%-3'")
    found = await verify(store, projection, fix=True)
    assert found.differing == 1 and len(found.repaired) == 1
    result = await rebuild(store, projection)
    assert result.rows == 7
    assert await table_rows(store.pool, projection) == await expected_rows(store, projection)

"""The lean pool in front of asyncpg's: reuse, waiting, and cleanup after failures."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from eventstore.pg import create_pool
from tests.conftest import StackEnv


async def backend_pid(pool_fetchval: object) -> int:
    return int(await pool_fetchval("SELECT pg_backend_pid()"))  # type: ignore[operator]


async def test_connections_are_reused_without_a_reset(test_env: StackEnv) -> None:
    pool = await create_pool(test_env.database_url, min_size=1, max_size=1)
    try:
        await pool.execute("SET application_name = 'kept'")
        pids = {await backend_pid(pool.fetchval) for _ in range(5)}
        assert len(pids) == 1
        # the jsonb codec of read models is installed on every connection
        assert await pool.fetchval("SELECT $1::jsonb", {"a": [1, "2"]}) == {"a": [1, "2"]}
    finally:
        await pool.close()


async def test_waiters_get_connections_in_turn(test_env: StackEnv) -> None:
    pool = await create_pool(test_env.database_url, min_size=0, max_size=2)
    try:
        results = await asyncio.gather(
            *(pool.fetchval("SELECT $1::int FROM pg_sleep(0.02)", i) for i in range(12))
        )
        assert results == list(range(12))
        assert pool.get_size() <= 2
    finally:
        await pool.close()


async def test_a_failed_or_cancelled_user_never_leaks_its_state(test_env: StackEnv) -> None:
    pool = await create_pool(test_env.database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await pool.fetch("SELECT * FROM no_such_table")
        assert await pool.fetchval("SELECT 1") == 1

        async with pool.acquire() as conn:  # left inside a transaction on purpose
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE scratch (x int)")
        assert not await pool.fetchval("SELECT to_regclass('pg_temp.scratch') IS NOT NULL")

        sleeper = asyncio.create_task(pool.execute("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.2)
        sleeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sleeper
        async with asyncio.timeout(5):  # the cancelled query does not block the next one
            assert await pool.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


async def test_a_connection_killed_by_the_server_is_replaced(test_env: StackEnv) -> None:
    pool = await create_pool(test_env.database_url, min_size=1, max_size=1)
    try:
        pid = await backend_pid(pool.fetchval)
        admin = await asyncpg.connect(test_env.database_url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        assert await backend_pid(pool.fetchval) != pid
    finally:
        await pool.close()

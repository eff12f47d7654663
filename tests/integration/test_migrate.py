"""`microshop migrate` on fresh databases: ordered, recorded, idempotent, concurrency-safe."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from microshop.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate
from tests.conftest import BASE_DSN, _drop_database, _with_database


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    name = f"microshop_migrate_{secrets.token_hex(4)}"
    yield _with_database(BASE_DSN, name)
    await _drop_database(BASE_DSN, name)


async def test_creates_the_database_and_applies_everything_once(fresh_dsn: str) -> None:
    files = [m.name for m in discover()]
    assert files, "no migrations found"

    assert await migrate(fresh_dsn) == files
    assert await migrate(fresh_dsn) == []  # a second run is a no-op

    conn = await asyncpg.connect(fresh_dsn)
    try:
        recorded = [
            r["name"]
            for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
        ]
        assert recorded == files
        assert await conn.fetchval("SELECT to_regclass('events') IS NOT NULL")
    finally:
        await conn.close()


async def test_concurrent_runs_apply_each_migration_once(fresh_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(fresh_dsn) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in discover())


async def test_a_failing_migration_is_rolled_back_and_reported(
    fresh_dsn: str, tmp_path: Path
) -> None:
    for migration in discover():
        (tmp_path / migration.name).write_text(migration.sql)
    (tmp_path / "9000_broken.sql").write_text(
        "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;"
    )
    with pytest.raises(MigrationError, match=r"9000_broken\.sql"):
        await migrate(fresh_dsn, tmp_path)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert not await conn.fetchval("SELECT to_regclass('half_done') IS NOT NULL")
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(discover())
    finally:
        await conn.close()


def test_misnamed_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Bad Name.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_snake_case"):
        discover(tmp_path)
    assert MIGRATIONS_DIR.is_dir()

"""`microshop events check` on a database of its own: the whole log decoded by this code."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from microshop.migrate import migrate
from tests.conftest import BASE_DSN, StackEnv, _drop_database, _with_database
from tests.integration.test_cli import microshop

V99 = '{"order_id": "x", "user_id": "u", "lines": [], "total": "1.00", "currency": "EUR"}'


@pytest.fixture
async def seeded_dsn(test_env: StackEnv) -> AsyncIterator[str]:
    name = f"microshop_check_{secrets.token_hex(4)}"
    dsn = _with_database(BASE_DSN, name)
    await migrate(dsn)
    seeded = microshop(test_env, "seed", DATABASE_URL=dsn, ADMIN_PASSWORD="long-password")
    assert seeded.returncode == 0, seeded.stderr
    yield dsn
    await _drop_database(BASE_DSN, name)


async def _insert(dsn: str, stream: str, event_type: str, version: int, data: str) -> uuid.UUID:
    event_id = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                                   schema_version, data)
               VALUES ($1, 1, $2, $3, $4, $5::jsonb)""",
            stream,
            event_id,
            event_type,
            version,
            data,
        )
    finally:
        await conn.close()
    return event_id


async def test_a_clean_log_passes_and_a_newer_version_fails(
    test_env: StackEnv, seeded_dsn: str
) -> None:
    clean = microshop(test_env, "events", "check", "--json", DATABASE_URL=seeded_dsn)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    counts = {(c["type"], c["schema_version"]): c["events"] for c in report["counts"]}
    assert counts[("UserRegistered", 2)] == 1 and counts[("ProductCreated", 1)] >= 12
    assert report["ok"] is True and report["failures"] == []

    newer = await _insert(seeded_dsn, f"order-{uuid.uuid4()}", "OrderPlaced", 99, V99)
    unknown = await _insert(seeded_dsn, f"misc-{uuid.uuid4()}", "NoSuchEvent", 1, "{}")
    broken = microshop(test_env, "events", "check", DATABASE_URL=seeded_dsn)
    assert broken.returncode == 1
    assert "Traceback" not in broken.stderr
    assert f"event {newer}" in broken.stdout and "newer than this code" in broken.stdout
    assert f"event {unknown}" in broken.stdout and "no code registers" in broken.stdout
    assert "2 events fail" in broken.stdout


def test_an_unreachable_database_is_one_line(test_env: StackEnv) -> None:
    result = microshop(test_env, "events", "check", DATABASE_URL="postgresql://127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "cannot reach the database" in result.stderr


async def test_the_cli_reads_past_an_event_it_cannot_decode(
    test_env: StackEnv, seeded_dsn: str
) -> None:
    """show, replay and rebuild print one line for it and go on; --strict stops instead."""
    stream = f"order-{uuid.uuid4()}"
    bad = await _insert(seeded_dsn, stream, "OrderPlaced", 99, V99)

    def run(*args: str) -> Any:
        result = microshop(test_env, *args, DATABASE_URL=seeded_dsn)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    shown = run("events", "show", stream)
    assert shown.returncode == 0 and "cannot read" in shown.stdout
    replayed = run("events", "replay", "--projection", "orders", "--stream", stream)
    assert replayed.returncode == 0
    assert "cannot read OrderPlaced v99" in replayed.stdout and f"event {bad}" in replayed.stdout
    rebuilt = run("projections", "rebuild", "orders")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"event {bad}" in rebuilt.stderr and "1 unreadable events left out" in rebuilt.stdout
    strict = run("projections", "rebuild", "orders", "--strict")
    assert strict.returncode == 1 and "nothing swapped in" in strict.stderr

"""`microshop seed` on a database of its own (it may wipe everything)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from microshop.migrate import migrate
from tests.conftest import BASE_DSN, StackEnv, _drop_database, _with_database


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    name = f"microshop_seed_{secrets.token_hex(4)}"
    dsn = _with_database(BASE_DSN, name)
    await migrate(dsn)
    yield dsn
    await _drop_database(BASE_DSN, name)


def seed(
    env: StackEnv, dsn: str, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", "seed", *args],
        env=env.environ(DATABASE_URL=dsn, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        users = await conn.fetchval("SELECT count(*) FROM users WHERE 'admin' = ANY(roles)")
        products = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'ProductCreated'"
        )
        events = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return int(users), int(products), int(events)


async def test_seed_creates_the_admin_and_the_catalog_once(
    test_env: StackEnv, fresh_dsn: str
) -> None:
    first = seed(test_env, fresh_dsn, ADMIN_EMAIL="boss@shop.test", ADMIN_PASSWORD="")
    assert first.returncode == 0, first.stderr
    assert "created admin boss@shop.test" in first.stdout
    assert "password: " in first.stdout  # generated, shown once
    admins, products, _ = await counts(fresh_dsn)
    assert admins == 1
    assert products >= 12

    again = seed(test_env, fresh_dsn, ADMIN_EMAIL="boss@shop.test")
    assert "admin boss@shop.test exists" in again.stdout
    assert "created 0 demo products" in again.stdout
    assert (await counts(fresh_dsn))[1] == products

    skipped = seed(test_env, fresh_dsn, "--if-empty")
    assert "not seeding" in skipped.stdout


async def test_reset_asks_first_and_then_wipes(test_env: StackEnv, fresh_dsn: str) -> None:
    seed(test_env, fresh_dsn, ADMIN_EMAIL="boss@shop.test", ADMIN_PASSWORD="long-password")
    _, products, events = await counts(fresh_dsn)

    declined = seed(test_env, fresh_dsn, "--reset", stdin="n\n")
    assert declined.returncode == 1
    assert (await counts(fresh_dsn))[2] == events

    wiped = seed(
        test_env,
        fresh_dsn,
        "--reset",
        "--yes",
        ADMIN_EMAIL="new@shop.test",
        ADMIN_PASSWORD="long-password",
    )
    assert wiped.returncode == 0, wiped.stderr
    assert "wiped" in wiped.stdout and "created admin new@shop.test" in wiped.stdout
    admins, again, after = await counts(fresh_dsn)
    assert (admins, again) == (1, products)
    assert after < events + products  # the old events are gone, not added to


def migrate_cli(
    env: StackEnv, dsn: str, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", "migrate", *args],
        env=env.environ(DATABASE_URL=dsn, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_migrate_seeds_an_empty_database_once(test_env: StackEnv, fresh_dsn: str) -> None:
    """What compose's one-shot `migrate` runs: a fresh stack comes up with its catalog."""
    first = migrate_cli(
        test_env, fresh_dsn, "--seed-if-empty", ADMIN_EMAIL="ops@shop.test", ADMIN_PASSWORD=""
    )
    assert first.returncode == 0, first.stderr
    assert "created admin ops@shop.test" in first.stdout and "password: " in first.stdout
    admins, products, events = await counts(fresh_dsn)
    assert admins == 1 and products >= 12
    again = migrate_cli(test_env, fresh_dsn, "--seed-if-empty")
    assert again.returncode == 0, again.stderr
    assert "not seeding" in again.stdout and "password" not in again.stdout
    assert await counts(fresh_dsn) == (admins, products, events)

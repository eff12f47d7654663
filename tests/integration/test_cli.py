"""The `microshop` command line, run as a real process against the test database."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from eventstore import ANY, Metadata, PostgresEventStore, create_pool
from tests.conftest import StackEnv
from tests.samples import Noted


def microshop(env: StackEnv, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", *args],
        env=env.environ(COLUMNS="200", **extra_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _append(env: StackEnv, stream: str, texts: list[str]) -> None:
    pool = await create_pool(env.database_url)
    try:
        store = PostgresEventStore(pool)
        for text in texts:
            meta = Metadata(correlation_id=f"corr-{text}", actor="tester")
            await store.append(stream, [Noted(text)], ANY, metadata=meta)
        await store.close()
    finally:
        await pool.close()


@pytest.fixture
def stream(test_env: StackEnv, uid: str) -> str:
    name = f"cli{uid}-1"
    asyncio.run(_append(test_env, name, ["first", "second", "third"]))
    return name


def test_help_lists_every_command(test_env: StackEnv) -> None:
    result = microshop(test_env, "--help")
    assert result.returncode == 0
    for command in ("up", "serve", "migrate", "projections", "events"):
        assert command in result.stdout
    replay = microshop(test_env, "events", "replay", "--help")
    assert "--to-position" in replay.stdout and "--stream" in replay.stdout


def test_migrate_twice_is_a_no_op(test_env: StackEnv) -> None:
    result = microshop(test_env, "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_events_show_prints_the_timeline(test_env: StackEnv, stream: str) -> None:
    result = microshop(test_env, "events", "show", stream)
    assert result.returncode == 0, result.stderr
    for text in ("TestNoted", "first", "third", "corr-second", "tester"):
        assert text in result.stdout
    missing = microshop(test_env, "events", "show", "cli-nothing-here")
    assert missing.returncode == 1
    assert "has no events" in missing.stderr


def test_rebuild_status_and_replay(test_env: StackEnv, stream: str) -> None:
    rebuilt = microshop(test_env, "projections", "rebuild", "streams")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt streams:" in rebuilt.stdout

    status = microshop(test_env, "projections", "status")
    assert status.returncode == 0, status.stderr
    assert "streams" in status.stdout and "relay" in status.stdout

    replay = microshop(test_env, "events", "replay", "--projection", "streams", "--stream", stream)
    assert replay.returncode == 0, replay.stderr
    assert '"event_count": 3' in replay.stdout
    assert replay.stdout.count(f"stream_id={stream}") == 3
    assert "3 events replayed into streams (nothing written)" in replay.stdout

    unknown = microshop(test_env, "events", "replay", "--projection", "nope")
    assert unknown.returncode == 2
    assert "unknown projection" in unknown.stderr


def test_tail_filters_by_category(test_env: StackEnv, stream: str, uid: str) -> None:
    result = microshop(
        test_env, "events", "tail", "--no-follow", "--from-start", "--category", f"cli{uid}"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(stream in line for line in lines)


def test_bad_configuration_is_a_clear_error(test_env: StackEnv) -> None:
    result = microshop(test_env, "projections", "status", MICROSHOP_NAMESPACE="bad name!")
    assert result.returncode == 1
    assert "MICROSHOP_NAMESPACE" in result.stderr
    unreachable = microshop(
        test_env, "projections", "status", DATABASE_URL="postgresql://127.0.0.1:1/none"
    )
    assert unreachable.returncode == 1
    assert "cannot reach the database" in unreachable.stderr


def test_events_schemas_checks_the_published_contracts(test_env: StackEnv) -> None:
    result = microshop(test_env, "events", "schemas")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 integration events match their published schemas" in result.stdout


def test_budget_sizes_the_pools_to_fit_and_says_when_they_cannot(test_env: StackEnv) -> None:
    fitted = microshop(
        test_env, "budget", "--replicas", "3", "--max-connections", "100", DB_POOL_MAX_SIZE=""
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "pool size 2" in fitted.stdout and "order           3 x (pool 2 + session 1)" in (
        fitted.stdout
    )
    refused = microshop(
        test_env, "budget", "--replicas", "3", "--max-connections", "100", DB_POOL_MAX_SIZE="10"
    )
    assert refused.returncode == 1
    assert "order           3 x (pool 10 + session 1) = 33" in refused.stdout  # the plan
    [line] = refused.stderr.splitlines()  # one Error line says why and what to do
    assert line.startswith("Error: the stack would not fit the database: 279 connections")
    assert "set DB_POOL_MAX_SIZE=2" in line


def test_up_refuses_to_start_a_stack_the_database_cannot_hold(test_env: StackEnv) -> None:
    result = microshop(
        test_env, "up", "--skip-migrate", "--replicas", "order=40", DB_POOL_MAX_SIZE="10"
    )
    assert result.returncode == 1
    assert "Error: the stack would not fit the database" in result.stderr
    assert "max_connections" in result.stderr and "started (pid" not in result.stdout
    bad = microshop(test_env, "up", "--skip-migrate", "--replicas", "order=zero")
    assert bad.returncode == 2 and "Invalid value for --replicas: 'order=zero'" in bad.stderr

"""Every failure of the `microshop` command line is one `Error:` line and a non-zero exit,
never a traceback, and no password it knows ever shows: run as a real process against
broken URLs, a database down, refusing or not migrated, a port in use, RabbitMQ away."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import BASE_DSN, StackEnv, _with_database

SECRET = "s3cr3t-" + secrets.token_hex(4)


def microshop(
    env: StackEnv, *args: str, stdin: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", *args],
        env=env.environ(COLUMNS="200", LOG_SHIPPING="false", NO_COLOR="1", **extra_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=stdin,
    )


def one_error_line(result: subprocess.CompletedProcess[str], *, status: int = 1) -> str:
    """The single `Error:` line `result` printed (asserting that it is all it printed)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert SECRET not in result.stdout + result.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "command", "says"),
    [
        ("not a url", ["migrate"], "a postgresql:// or postgres:// URL is expected"),
        (f"postgresql://shop:{SECRET}@127.0.0.1:notaport/x", ["seed"], "Port could not be"),
        (f"http://shop:{SECRET}@h:5432/x", ["events", "show", "order-1"], "a postgresql://"),
        (f"postgresql://shop:{SECRET}@[::1/x", ["projections", "status"], "Invalid IPv6 URL"),
    ],
    ids=["garbage", "port", "scheme", "ipv6"],
)
def test_a_malformed_database_url(
    test_env: StackEnv, url: str, command: list[str], says: str
) -> None:
    line = one_error_line(microshop(test_env, *command, DATABASE_URL=url))
    assert "DATABASE_URL=" in line and says in line, line


def test_a_database_that_is_down(test_env: StackEnv) -> None:
    url = f"postgresql://shop:{SECRET}@127.0.0.1:{closed_port()}/microshop"
    for command in (
        ["migrate"],
        ["up"],  # so `make up` too: it migrates first
        ["events", "tail", "--no-follow"],
        ["projections", "verify", "orders"],
    ):
        line = one_error_line(microshop(test_env, *command, DATABASE_URL=url))
        assert "cannot reach the database" in line and "shop:***@" in line, line


def test_a_role_the_database_refuses(test_env: StackEnv) -> None:
    url = test_env.database_url.replace("postgres@", f"nosuchrole:{SECRET}@")
    assert "nosuchrole" in url
    for command in (["migrate"], ["seed"]):
        line = one_error_line(microshop(test_env, *command, DATABASE_URL=url))
        assert "refused the login" in line and 'role "nosuchrole" does not exist' in line


@pytest.fixture
def unmigrated(test_env: StackEnv) -> Iterator[str]:
    """The URL of a database that exists but was never migrated."""
    name = f"{test_env.database_url.rsplit('/', 1)[1]}_bare"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_with_database(BASE_DSN, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(test_env.database_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_database_not_migrated(test_env: StackEnv, unmigrated: str) -> None:
    for command in (["seed"], ["projections", "status"]):
        line = one_error_line(microshop(test_env, *command, DATABASE_URL=unmigrated))
        assert "not migrated" in line and "run `microshop migrate` first" in line, line
    missing = unmigrated + "_missing"
    line = one_error_line(microshop(test_env, "seed", DATABASE_URL=missing))
    assert "does not exist" in line and "`microshop migrate` creates it" in line


def test_serve_on_a_port_in_use(test_env: StackEnv) -> None:
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = microshop(test_env, "serve", "product", "--port", str(port))
    line = one_error_line(result)
    assert f"127.0.0.1:{port}: the port is in use" in line and "PRODUCT_PORT" in line


def test_rabbitmq_unreachable(test_env: StackEnv) -> None:
    url = f"amqp://guest:{SECRET}@127.0.0.1:{closed_port()}/"
    republish = ["events", "republish", "--consumer", "order-payments"]
    for command in (
        ["dead-letters", "list"],
        [*republish, "--from-position", "1", "--to-position", "2"],
    ):
        line = one_error_line(microshop(test_env, *command, AMQP_URL=url))
        assert "cannot reach RabbitMQ" in line and "guest:***@" in line, line
    bad = one_error_line(microshop(test_env, "dead-letters", "list", AMQP_URL="nonsense"))
    assert "AMQP_URL=<hidden>" in bad and "('nonsense')" in bad  # what is wrong, no secret


def test_the_reset_prompt_masks_the_password(test_env: StackEnv) -> None:
    url = test_env.database_url.replace("postgres@", f"postgres:{SECRET}@")
    result = microshop(test_env, "seed", "--reset", stdin="n\n", DATABASE_URL=url)
    assert result.returncode == 1  # not confirmed: nothing wiped
    assert "postgres:***@" in result.stdout and SECRET not in result.stdout + result.stderr


def test_tail_last_zero_prints_nothing_and_a_negative_count_is_refused(
    test_env: StackEnv,
) -> None:
    result = microshop(test_env, "events", "tail", "--no-follow", "--last", "0")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    some = microshop(test_env, "events", "tail", "--no-follow", "--last", "1")
    assert some.returncode == 0 and len(some.stdout.splitlines()) <= 1
    line = one_error_line(microshop(test_env, "events", "tail", "--last", "-1"), status=2)
    assert "--last" in line and "`microshop events tail --help`" in line


def test_usage_mistakes_are_one_line_too(test_env: StackEnv) -> None:
    for command, says in (
        (["events", "replay", "--projection", "nosuch"], "unknown projection 'nosuch'"),
        (["events", "show"], "give a STREAM or --correlation ID"),
    ):
        assert says in one_error_line(microshop(test_env, *command), status=2)

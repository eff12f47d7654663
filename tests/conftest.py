"""Shared fixtures: every test run gets its own database, RabbitMQ vhost and namespace.

Integration tests talk to the real Postgres and RabbitMQ of the machine. A run creates
`microshop_test_<hex>` (migrated) and the vhost `microshop-test-<hex>`, points
DATABASE_URL / AMQP_URL / MICROSHOP_NAMESPACE at them, and removes both at the end, so
runs never collide with each other or with a developer's `make up` stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from eventstore import PostgresEventStore, create_pool
from eventstore.pg import Pool
from eventstore.sealing import KeyEncryptionKeys
from eventstore.vault import PersonalDataVault
from microshop.config import Config
from microshop.migrate import migrate
from microshop.personal import vault_for

# the shared suites assert in plain modules: show their failures as pytest does
pytest.register_assert_rewrite("tests.contract", "tests.samples")

BASE_DSN = os.environ.get("MICROSHOP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
BASE_AMQP = os.environ.get("MICROSHOP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class StackEnv:
    database_url: str
    amqp_url: str
    namespace: str
    vhost: str

    def environ(self, **extra: str) -> dict[str, str]:
        """os.environ plus this run's connection settings (for subprocesses)."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            AMQP_URL=self.amqp_url,
            MICROSHOP_NAMESPACE=self.namespace,
        )
        env.update(extra)
        return env

    def config(self, **overrides: object) -> Config:
        return Config.from_env(self.environ(), **overrides)


def _with_database(dsn: str, name: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise RuntimeError("integration tests need rabbitmqctl (RabbitMQ's CLI) on PATH")
    return subprocess.run(
        [exe, "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


async def _drop_database(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(_with_database(dsn, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def test_env() -> Iterator[StackEnv]:
    token = secrets.token_hex(4)
    db_name, vhost = f"microshop_test_{token}", f"microshop-test-{token}"
    database_url = _with_database(BASE_DSN, db_name)
    asyncio.run(migrate(database_url))
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    amqp_url = BASE_AMQP.rstrip("/") + "/" + urllib.parse.quote(vhost, safe="")
    env = StackEnv(database_url, amqp_url, f"test-{token}", vhost)
    names = ("DATABASE_URL", "AMQP_URL", "MICROSHOP_NAMESPACE", "PII_KEY_ENCRYPTION_KEY")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(
        DATABASE_URL=database_url,
        AMQP_URL=amqp_url,
        MICROSHOP_NAMESPACE=env.namespace,
        PII_KEY_ENCRYPTION_KEY=KeyEncryptionKeys.generate(),  # never the checkout's var/pii-kek
    )
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        rabbitmqctl("delete_vhost", vhost)
        asyncio.run(_drop_database(BASE_DSN, db_name))


@pytest.fixture
async def pool(test_env: StackEnv) -> AsyncIterator[Pool]:
    pool = await create_pool(test_env.database_url, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
def vault(pool: Pool, test_env: StackEnv) -> PersonalDataVault:
    """Personal data keys on `pool`, with this run's key-encryption key."""
    return vault_for(test_env.config(), pool)


@pytest.fixture
async def store(
    pool: Pool, test_env: StackEnv, vault: PersonalDataVault
) -> AsyncIterator[PostgresEventStore]:
    store = PostgresEventStore(pool, dsn=test_env.database_url, vault=vault)
    yield store
    await store.close()


@pytest.fixture
def uid() -> str:
    """A short random id for stream ids, names and categories private to one test."""
    return secrets.token_hex(6)


@contextlib.asynccontextmanager
async def stand_in(app: web.Application) -> AsyncIterator[str]:
    """`app` (a stand-in for another service) served on a free local port while the block
    runs: its base URL, without a trailing slash."""
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def closed_port_url() -> str:
    """The URL of a local port nothing listens on (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

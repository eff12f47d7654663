"""The admin account cannot be squatted: its address is refused at registration, and an
ordinary account that holds it anyway (registered before the address was reserved) makes
`microshop seed` fail loudly instead of reporting an admin that does not exist."""

from __future__ import annotations

import logging

import pytest

from eventstore import Metadata, PostgresEventStore, create_pool
from microshop.config import Config
from microshop.personal import vault_for
from services.auth.accounts import Accounts
from services.auth.app import create_app
from services.auth.passwords import hash_password
from tests.conftest import StackEnv
from tests.integration.test_auth_service import MakeClient, config, login
from tests.integration.test_seed import counts, fresh_dsn, seed
from tests.tokens import bearer

__all__ = ["fresh_dsn"]  # the fixture, used by name

SQUATTER = "registered-first"


async def squat(dsn: str, email: str) -> None:
    """What registering through the API did before the address was reserved."""
    pool = await create_pool(dsn)
    store = PostgresEventStore(pool, dsn=dsn, vault=vault_for(Config.from_env(), pool))
    try:
        await Accounts(store).create(email, await hash_password(SQUATTER), metadata=Metadata())
    finally:
        await store.close()
        await pool.close()


async def test_seed_fails_with_one_error_line_when_an_ordinary_account_holds_the_address(
    test_env: StackEnv, fresh_dsn: str
) -> None:
    await squat(fresh_dsn, "boss@shop.test")
    squatted = seed(test_env, fresh_dsn, ADMIN_EMAIL="BOSS@shop.test", ADMIN_PASSWORD="")
    assert squatted.returncode == 1
    assert squatted.stderr.strip().splitlines() == [
        "Error: ADMIN_EMAIL belongs to an account without the admin role, not the admin:"
        " forget that account (microshop gdpr forget) or set another ADMIN_EMAIL"
    ]
    assert "exists" not in squatted.stdout and "password" not in squatted.stdout
    assert (await counts(fresh_dsn))[0] == 0  # nobody was made admin

    other = seed(test_env, fresh_dsn, ADMIN_EMAIL="ops@shop.test", ADMIN_PASSWORD="")
    assert other.returncode == 0, other.stderr
    assert "created admin ops@shop.test" in other.stdout
    again = seed(test_env, fresh_dsn, ADMIN_EMAIL="ops@shop.test")
    assert again.returncode == 0 and "admin ops@shop.test exists" in again.stdout


async def test_auth_service_starts_without_promoting_a_squatter_and_says_so(
    aiohttp_client: MakeClient,
    test_env: StackEnv,
    store: PostgresEventStore,
    uid: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = f"root.{uid}@shop.test"
    await Accounts(store).create(admin, await hash_password(SQUATTER), metadata=Metadata())
    settings = config(test_env, admin_email=admin, admin_password="the-real-one")
    with caplog.at_level(logging.ERROR, logger="services.auth.app"):
        client = await aiohttp_client(create_app(settings))
    assert any("without the admin role" in r.getMessage() for r in caplog.records)
    assert (await login(client, admin, "the-real-one")).status == 401
    squatter = await (await login(client, admin, SQUATTER)).json()
    me = await client.get("/api/auth/me", headers=bearer(squatter["access_token"]))
    assert (await me.json())["roles"] == ["user"]

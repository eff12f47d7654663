"""Forgetting a person, on the real database: auth-service's admin API and its refusals,
every service refusing a forgotten account's tokens, registrations stored before sealing
existed, and `microshop gdpr` on the command line."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import Metadata, PostgresEventStore, create_pool
from eventstore.personal import REDACTED
from eventstore.pg import Pool
from eventstore.sealing import KeyEncryptionKeys
from eventstore.vault import PersonalDataVault
from microshop.migrate import migrate
from services.auth.accounts import Accounts
from services.auth.app import create_app
from services.auth.domain import UserRegistered
from services.auth.forgetting import PlainPersonalData, forget
from services.auth.passwords import hash_password
from services.order.app import create_app as create_order_app
from tests.conftest import BASE_DSN, StackEnv, _drop_database, _with_database
from tests.tokens import TEST_KEYS, bearer, mint

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def auth(aiohttp_client: MakeClient, test_env: StackEnv, uid: str) -> tuple[Client, Any]:
    """auth-service with an admin of its own: the client and the admin's headers."""
    email, password = f"admin.{uid}@example.com", secrets.token_urlsafe(12)
    client = await aiohttp_client(
        create_app(test_env.config(admin_email=email, admin_password=password))
    )
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return client, bearer((await resp.json())["access_token"])


async def signup(client: Client, email: str) -> tuple[str, dict[str, str]]:
    body = {"email": email, "password": "correct horse"}
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 201, await resp.text()
    token = (await (await client.post("/api/auth/login", json=body)).json())["access_token"]
    return (await resp.json())["id"], bearer(token)


async def error_code(resp: Any) -> tuple[int, str]:
    return resp.status, (await resp.json())["error"]["code"]


async def test_an_admin_forgets_a_person_and_nothing_of_their_email_is_left(
    auth: tuple[Client, Any], store: PostgresEventStore, vault: PersonalDataVault, pool: Pool
) -> None:
    client, admin = auth
    email = f"Grace.{secrets.token_hex(4)}@Example.com"
    user_id, me = await signup(client, email)
    wrong = await client.post("/api/auth/login", json={"email": email, "password": "nope-nope"})
    assert wrong.status == 401  # a failed login on record for the account

    assert await error_code(await client.delete(f"/api/admin/users/{user_id}", headers=me)) == (
        403,
        "forbidden",
    )
    resp = await client.delete(f"/api/admin/users/{user_id}", headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["user_id"], body["key_destroyed"]) == (user_id, True)

    assert await error_code(await client.get("/api/auth/me", headers=me)) == (
        401,
        "account_forgotten",
    )  # at once in the process that forgot them
    login = await client.post("/api/auth/login", json={"email": email, "password": "correct horse"})
    assert login.status == 401
    registered, forgotten = await store.read_stream(f"user-{user_id}")
    assert forgotten.event_type == "UserForgotten" and forgotten.metadata.actor is not None
    assert (await vault.reveal(registered.data)).email == REDACTED
    like = f"%{email.lower()}%"
    for table in ("events", "users", "login_failures", "personal_keys", "forgotten_users"):
        found = await pool.fetchval(f"SELECT count(*) FROM {table} t WHERE t::text ILIKE $1", like)
        assert found == 0, table
    assert await pool.fetchval("SELECT count(*) FROM forgotten_users WHERE user_id = $1", user_id)

    again = await client.delete(f"/api/admin/users/{user_id}", headers=admin)
    assert await error_code(again) == (409, "already_forgotten")
    for unknown in (str(uuid.uuid4()), "not-a-user-id"):
        gone = await client.delete(f"/api/admin/users/{unknown}", headers=admin)
        assert await error_code(gone) == (404, "user_not_found")
    new_id, _ = await signup(client, email)  # the same email later: a new person
    assert new_id != user_id

    admin_id = (await (await client.get("/api/auth/me", headers=admin)).json())["id"]
    itself = await client.delete(f"/api/admin/users/{admin_id}", headers=admin)
    assert await error_code(itself) == (409, "admin_account")  # the API spares admins
    assert (await client.get("/api/auth/me", headers=admin)).status == 200


async def test_every_service_refuses_a_forgotten_accounts_token_within_a_second(
    aiohttp_client: MakeClient, test_env: StackEnv, pool: Pool
) -> None:
    orders = await aiohttp_client(create_order_app(test_env.config(), token_keys=TEST_KEYS))
    user_id = str(uuid.uuid4())
    me = bearer(mint(user_id))
    assert (await orders.get("/api/orders", headers=me)).status == 200
    await pool.execute("INSERT INTO forgotten_users (user_id) VALUES ($1)", user_id)
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(5):
        while (resp := await orders.get("/api/orders", headers=me)).status == 200:
            await asyncio.sleep(0.05)
    assert await error_code(resp) == (401, "account_forgotten")
    assert asyncio.get_running_loop().time() - started < 3
    assert (await orders.get("/api/orders", headers=bearer(mint()))).status == 200  # others


def microshop(
    env: StackEnv, *args: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", *args],
        env=env.environ(**extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_registration_stored_before_sealing_is_sealed_by_the_owner_then_forgotten(
    test_env: StackEnv, store: PostgresEventStore, vault: PersonalDataVault, pool: Pool
) -> None:
    """The upcaster test for plain v1 `UserRegistered` rows (redaction on read), and why
    forgetting such an account works: the owner seals the old rows in place first."""
    user_id, email = str(uuid.uuid4()), f"legacy.{secrets.token_hex(4)}@example.com"
    await pool.execute(  # the account as the code before sealing left it: row and v1 event
        "INSERT INTO users (id, email, password_hash, roles) VALUES ($1, $2, $3, '{user}')",
        uuid.UUID(user_id),
        email,
        await hash_password("correct horse"),
    )
    await pool.execute(
        """INSERT INTO events (stream_id, stream_version, event_id, event_type,
                               schema_version, data)
           VALUES ($1, 1, $2, 'UserRegistered', 1, $3::text::jsonb)""",
        f"user-{user_id}",
        uuid.uuid4(),
        json.dumps({"user_id": user_id, "email": email, "roles": ["user"]}),
    )

    [event] = await store.read_stream(f"user-{user_id}")
    assert event.schema_version == 1
    assert event.data == UserRegistered(user_id, REDACTED, ("user",))  # never read in plain

    with pytest.raises(PlainPersonalData, match="seal-legacy") as refused:
        await forget(store, vault, user_id, metadata=event.metadata)
    assert refused.value.details["plain_events"] == 1
    assert await Accounts(store).by_id(user_id) is not None  # nothing was changed

    sealed = microshop(test_env, "gdpr", "seal-legacy", "--yes")
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed" in sealed.stdout
    raw = await pool.fetchrow(
        "SELECT schema_version, data::text FROM events WHERE stream_id = $1", f"user-{user_id}"
    )
    assert raw is not None and raw[0] == 1 and email not in raw[1]  # only the value changed
    [event] = await store.read_stream(f"user-{user_id}")
    assert (await vault.reveal(event.data)).email == email  # the v1 row now reads sealed

    done = microshop(test_env, "gdpr", "forget", user_id, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"forgot user {user_id}" in done.stdout and "key destroyed" in done.stdout
    assert (
        await pool.fetchval("SELECT count(*) FROM events WHERE data::text ILIKE $1", f"%{email}%")
        == 0
    )
    [event, _] = await store.read_stream(f"user-{user_id}")
    assert (await vault.reveal(event.data)).email == REDACTED
    again = microshop(test_env, "gdpr", "seal-legacy", "--yes")
    assert "sealed 0 personal value(s), erased 0" in again.stdout


async def test_gdpr_forget_asks_first_and_says_why_it_cannot(
    test_env: StackEnv, store: PostgresEventStore
) -> None:
    for unknown in (str(uuid.uuid4()), "someone"):
        result = microshop(test_env, "gdpr", "forget", unknown, "--yes")
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: there is no user {unknown}")
        assert "Traceback" not in result.stderr

    event = await Accounts(store).create(
        f"ask.{secrets.token_hex(4)}@example.com", "x", metadata=Metadata(actor="test")
    )
    declined = microshop(test_env, "gdpr", "forget", event.user_id, stdin="n\n")
    assert declined.returncode == 1 and "Forget user" in declined.stdout
    assert await Accounts(store).by_id(event.user_id) is not None
    assert event.email not in declined.stdout  # the prompt shows no personal data

    confirmed = microshop(test_env, "gdpr", "forget", event.user_id, stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert await Accounts(store).by_id(event.user_id) is None
    twice = microshop(test_env, "gdpr", "forget", event.user_id, "--yes")
    assert twice.returncode == 1
    assert twice.stderr.startswith(f"Error: user {event.user_id} was forgotten at")


async def test_gdpr_rotate_key_rewraps_every_data_key(test_env: StackEnv) -> None:
    name = f"microshop_rotate_{secrets.token_hex(4)}"
    dsn = _with_database(BASE_DSN, name)
    await migrate(dsn)

    def rotate(keys: str) -> subprocess.CompletedProcess[str]:
        return microshop(
            test_env, "gdpr", "rotate-key", DATABASE_URL=dsn, PII_KEY_ENCRYPTION_KEY=keys
        )

    try:
        old, new = KeyEncryptionKeys.generate(), KeyEncryptionKeys.generate()
        seeded = microshop(
            test_env, "seed", DATABASE_URL=dsn, PII_KEY_ENCRYPTION_KEY=old, ADMIN_PASSWORD=""
        )
        assert seeded.returncode == 0, seeded.stderr
        lost = rotate(new)
        assert lost.returncode == 1 and "not configured" in lost.stderr  # OLD must be listed

        rotated = rotate(f"{new},{old}")
        assert rotated.returncode == 0, rotated.stderr
        current = KeyEncryptionKeys.parse(new).current_id
        assert f"rewrapped 1 data key(s); 1 are wrapped by key-encryption key {current}" in (
            rotated.stdout
        )
        after = rotate(new)
        assert after.returncode == 0 and "rewrapped 0" in after.stdout

        pool = await create_pool(dsn, max_size=1)
        try:  # the admin's email opens with the new key alone
            stream = await pool.fetchval("SELECT stream_id FROM events WHERE stream_id ~ '^user-'")
            [event] = await PostgresEventStore(pool).read_stream(stream)
            opened = await PersonalDataVault(pool, KeyEncryptionKeys.parse(new)).reveal(event.data)
            assert opened.email == test_env.config().admin_email
        finally:
            await pool.close()
    finally:
        await _drop_database(BASE_DSN, name)

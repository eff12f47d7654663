"""Personal data in the real event store: sealed before it is stored, opened for code with
the key, redacted once the key is destroyed, rotated to a new key-encryption key; and a
log nobody can edit, whether the application connects as the owner or as its own role."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore import NO_STREAM, PostgresEventStore, create_pool, rebuild
from eventstore.errors import AppendOnly, KeyUnavailable, SubjectForgotten
from eventstore.maintenance import editing_events
from eventstore.personal import REDACTED
from eventstore.pg import Pool
from eventstore.sealing import KeyEncryptionKeys
from eventstore.streams import StreamsProjection
from eventstore.vault import PersonalDataVault
from microshop.migrate import MigrationError, migrate
from tests.conftest import BASE_DSN, _drop_database, _with_database
from tests.samples import Noted, Signed


async def raw_data(pool: Pool, stream: str) -> list[str]:
    rows = await pool.fetch("SELECT data::text FROM events WHERE stream_id = $1", stream)
    return [r[0] for r in rows]


async def test_personal_fields_are_sealed_before_they_are_stored(
    store: PostgresEventStore, vault: PersonalDataVault, pool: Pool, uid: str
) -> None:
    member, name = f"m-{uid}", f"Ada Lovelace {uid}"
    await store.append(f"signup-{uid}", [Signed(member, name, "gold")], NO_STREAM)

    stored = await raw_data(pool, f"signup-{uid}")
    assert name not in stored[0] and "gold" in stored[0]  # only the personal field is sealed
    [event] = await store.read_stream(f"signup-{uid}")
    assert event.data.name.startswith("pii:1:") and event.data.plan == "gold"
    assert await vault.reveal(event.data) == Signed(member, name, "gold")
    key = await pool.fetchrow("SELECT kek_id FROM personal_keys WHERE subject = $1", member)
    assert key is not None and key["kek_id"] == vault.keys.current_id


async def test_forgetting_redacts_every_copy_and_refuses_new_data(
    store: PostgresEventStore, vault: PersonalDataVault, pool: Pool, uid: str
) -> None:
    member = f"m-{uid}"
    await store.append(f"signup-{uid}", [Signed(member, "Grace")], NO_STREAM)
    [event] = await store.read_stream(f"signup-{uid}")

    assert await vault.forget(member) is True
    assert await vault.forgotten(member)
    assert await vault.reveal(event.data) == Signed(member, REDACTED)  # redacted, no crash
    assert (await store.read_stream(f"signup-{uid}"))[0].data == event.data  # the row as it was

    with pytest.raises(SubjectForgotten):
        await store.append(f"signup-{uid}-again", [Signed(member, "Grace")], NO_STREAM)
    assert await raw_data(pool, f"signup-{uid}-again") == []
    assert await vault.forget(member) is False  # nothing left to destroy
    assert await vault.forget(f"never-{uid}") is False  # a tombstone all the same
    with pytest.raises(SubjectForgotten):
        await store.append(f"signup-{uid}-never", [Signed(f"never-{uid}", "x")], NO_STREAM)


async def test_a_wrong_key_encryption_key_is_an_error_not_a_forgetting(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    await store.append(f"signup-{uid}", [Signed(f"m-{uid}", "Ada")], NO_STREAM)
    [event] = await store.read_stream(f"signup-{uid}")
    stranger = PersonalDataVault(pool, KeyEncryptionKeys.parse(KeyEncryptionKeys.generate()))
    with pytest.raises(KeyUnavailable, match="not configured"):
        await stranger.reveal(event.data)


@pytest.fixture
async def fresh_pool() -> AsyncIterator[Pool]:
    """A migrated database of its own (rotation rewraps every key in it)."""
    name = f"microshop_pii_{secrets.token_hex(4)}"
    dsn = _with_database(BASE_DSN, name)
    await migrate(dsn)
    pool = await create_pool(dsn, max_size=2)
    yield pool
    await pool.close()
    await _drop_database(BASE_DSN, name)


async def test_rotation_rewraps_every_data_key_under_the_new_kek(fresh_pool: Pool) -> None:
    old, new = KeyEncryptionKeys.generate(), KeyEncryptionKeys.generate()
    before = PersonalDataVault(fresh_pool, KeyEncryptionKeys.parse(old))
    store = PostgresEventStore(fresh_pool, vault=before)
    for n in range(3):
        await store.append(f"signup-{n}", [Signed(f"m{n}", f"person {n}")], NO_STREAM)
    events = [e.data for n in range(3) for e in await store.read_stream(f"signup-{n}")]
    await store.close()  # its wake-up notifier must not hold a connection as the pool closes

    with pytest.raises(KeyUnavailable, match="not configured"):  # OLD not listed: no change
        await PersonalDataVault(fresh_pool, KeyEncryptionKeys.parse(new)).rewrap()
    assert (await before.counts()).by_kek == {before.keys.current_id: 3}

    during = PersonalDataVault(fresh_pool, KeyEncryptionKeys.parse(f"{new},{old}"))
    assert [(await during.reveal(e)).name for e in events] == ["person 0", "person 1", "person 2"]
    assert await during.rewrap(batch_size=2) == 3
    assert await during.rewrap() == 0
    assert (await during.counts()).by_kek == {during.keys.current_id: 3}

    after = PersonalDataVault(fresh_pool, KeyEncryptionKeys.parse(new))
    assert [(await after.reveal(e)).name for e in events] == ["person 0", "person 1", "person 2"]
    with pytest.raises(KeyUnavailable):
        await before.reveal(events[0])  # the old KEK opens nothing any more


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = data WHERE stream_id = $1",
        "DELETE FROM events WHERE stream_id = $1",
        "TRUNCATE events",
    ],
)
async def test_the_log_refuses_update_delete_and_truncate(
    store: PostgresEventStore, pool: Pool, uid: str, statement: str
) -> None:
    await store.append(f"note{uid}-1", [Noted("kept")], NO_STREAM)
    args = [f"note{uid}-1"] if "$1" in statement else []
    with pytest.raises(asyncpg.RestrictViolationError, match="events is append-only"):
        await pool.execute(statement, *args)
    assert len(await store.read_stream(f"note{uid}-1")) == 1


async def test_only_the_owner_lifts_the_trigger_for_one_transaction(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    await store.append(f"note{uid}-1", [Noted("before")], NO_STREAM)
    async with pool.acquire() as conn, editing_events(conn):
        await conn.execute(
            """UPDATE events SET data = '{"text": "after", "n": 1}' WHERE stream_id = $1""",
            f"note{uid}-1",
        )
    [event] = await store.read_stream(f"note{uid}-1")
    assert event.data == Noted("after")
    with pytest.raises(asyncpg.RestrictViolationError):  # on again after the commit
        await pool.execute("DELETE FROM events WHERE stream_id = $1", f"note{uid}-1")

    async def delete_then_fail() -> None:
        async with pool.acquire() as conn, editing_events(conn):
            await conn.execute("DELETE FROM events WHERE stream_id = $1", f"note{uid}-1")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):  # a failure inside rolls the edit back
        await delete_then_fail()
    assert len(await store.read_stream(f"note{uid}-1")) == 1


@pytest.fixture
async def app_role() -> AsyncIterator[tuple[str, str]]:
    """A database migrated by the owner (postgres) for the services' own role: the role's
    name and the database's URL as that role."""
    token = secrets.token_hex(4)
    role, name = f"microshop_app_{token}", f"microshop_roles_{token}"
    admin = await asyncpg.connect(_with_database(BASE_DSN, "postgres"))
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    dsn = _with_database(BASE_DSN, name)
    try:
        with pytest.raises(MigrationError, match="no role"):
            await migrate(dsn, app_role=f"nobody_{token}")
        await migrate(dsn, app_role=role)
        assert await migrate(dsn, app_role=role) == []  # again: nothing to apply, grants kept
        yield role, dsn.replace("://postgres@", f"://{role}@")
    finally:
        await _drop_database(BASE_DSN, name)
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_an_app_role_reads_and_appends_to_the_log_and_nothing_else(
    app_role: tuple[str, str],
) -> None:
    role, dsn = app_role
    pool = await create_pool(dsn, max_size=2)
    try:
        assert await pool.fetchval("SELECT current_user") == role
        store = PostgresEventStore(pool)
        await store.append("note-1", [Noted("by the app")], NO_STREAM)
        assert [e.data for e in await store.read_stream("note-1")] == [Noted("by the app")]
        for statement in ("UPDATE events SET data = data", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute(statement)
        with pytest.raises(AppendOnly, match="only the owner"):
            async with pool.acquire() as conn, editing_events(conn):
                pass
        result = await rebuild(store, StreamsProjection())  # read models are its own
        assert result.rows == 1
        owner = await pool.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'streams'")
        assert owner == role
        await store.close()
    finally:
        await pool.close()


async def test_keys_are_made_once_per_subject_by_concurrent_writers(
    store: PostgresEventStore, pool: Pool, uid: str
) -> None:
    member = f"m-{uid}"
    await asyncio.gather(
        *(store.append(f"signup-{uid}-{n}", [Signed(member, f"n{n}")], NO_STREAM) for n in range(5))
    )
    assert await pool.fetchval("SELECT count(*) FROM personal_keys WHERE subject = $1", member) == 1
    vault = store.vault
    assert isinstance(vault, PersonalDataVault)
    names = [
        (await vault.reveal(e.data)).name
        for n in range(5)
        for e in await store.read_stream(f"signup-{uid}-{n}")
    ]
    assert names == [f"n{n}" for n in range(5)]

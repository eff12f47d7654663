"""auth-service on the real database: short access tokens, rotating refresh tokens with
reuse detection, logout, the revoked-logins list the gateway polls, and the sweeper."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from typing import Any

import jwt
import pytest
from aiohttp import web

from eventstore.pg import Pool
from services.auth.app import create_app, sweep_forever
from services.auth.tokens import RefreshTokens
from tests.conftest import StackEnv
from tests.integration.test_auth_service import (
    INTERNAL_KEY,
    Client,
    MakeClient,
    config,
    login,
    register,
)
from tests.tokens import bearer


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    return await aiohttp_client(create_app(config(test_env)))


async def logged_in(client: Client, uid: str, name: str = "ada") -> dict[str, Any]:
    email = f"{name}.{uid}@example.com"
    await register(client, email)
    resp = await login(client, email, "correct horse")
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


def session_of(access_token: str) -> str:
    sid: str = jwt.decode(access_token, options={"verify_signature": False})["sid"]
    return sid


async def revoked(client: Client) -> list[str]:
    resp = await client.get(
        "/internal/sessions/revoked", headers={"X-Internal-Api-Key": INTERNAL_KEY}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["window_seconds"] == 900 + 30
    sessions: list[str] = body["sessions"]
    return sessions


async def test_login_gives_a_short_access_token_and_only_a_hash_of_the_refresh_token_is_kept(
    client: Client, pool: Pool, uid: str
) -> None:
    tokens = await logged_in(client, uid)
    assert set(tokens) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == tokens["expires_in"] == 900
    family = uuid.UUID(claims["sid"])

    stored = await pool.fetch(
        "SELECT token_hash, used_at FROM refresh_tokens WHERE family_id = $1", family
    )
    assert [bytes(r["token_hash"]) for r in stored] == [
        hashlib.sha256(tokens["refresh_token"].encode()).digest()
    ]
    in_text = await pool.fetchval(
        "SELECT count(*) FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id"
        " WHERE strpos(t::text || f::text, $1) > 0",
        tokens["refresh_token"],
    )
    assert in_text == 0


async def test_refresh_rotates_and_presenting_a_retired_token_revokes_the_login(
    client: Client, uid: str
) -> None:
    first = await logged_in(client, uid)
    sid = session_of(first["access_token"])

    resp = await refresh(client, first["refresh_token"])
    assert resp.status == 200, await resp.text()
    second = await resp.json()
    assert second["token_type"] == "Bearer" and second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"]
    assert session_of(second["access_token"]) == sid  # the same login
    me = await client.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert (await me.json())["email"] == f"ada.{uid}@example.com"
    assert sid not in await revoked(client)

    # the retired token again: someone kept a copy. The whole login ends.
    reused = await refresh(client, first["refresh_token"])
    assert reused.status == 401
    assert (await reused.json())["error"]["code"] == "refresh_token_reused"
    after = await refresh(client, second["refresh_token"])  # the newest one dies with it
    assert after.status == 401
    assert (await after.json())["error"]["code"] == "invalid_refresh_token"
    assert sid in await revoked(client)


async def test_of_two_refreshes_racing_with_one_token_one_wins_and_the_login_is_revoked(
    client: Client, uid: str
) -> None:
    """The loser of a race counts as reuse: the server cannot tell a double click from a
    thief racing the owner, so the login ends, the winner's new token included."""
    for n in range(4):
        tokens = await logged_in(client, uid, f"racer{n}")
        answers = await asyncio.gather(
            *(refresh(client, tokens["refresh_token"]) for _ in range(2))
        )
        statuses = sorted(a.status for a in answers)
        assert statuses == [200, 401]
        winner = next(a for a in answers if a.status == 200)
        loser = next(a for a in answers if a.status == 401)
        assert (await loser.json())["error"]["code"] == "refresh_token_reused"
        won = await winner.json()
        assert (await refresh(client, won["refresh_token"])).status == 401
        assert session_of(won["access_token"]) in await revoked(client)


async def test_logout_revokes_the_login_and_is_idempotent(client: Client, uid: str) -> None:
    tokens = await logged_in(client, uid)
    other = await logged_in(client, uid, "ada-elsewhere")  # another login stays alive
    rotated = await (await refresh(client, tokens["refresh_token"])).json()

    out = await client.post("/api/auth/logout", json={"refresh_token": rotated["refresh_token"]})
    assert out.status == 204
    gone = await refresh(client, rotated["refresh_token"])
    assert (await gone.json())["error"]["code"] == "invalid_refresh_token"
    listed = await revoked(client)
    assert session_of(tokens["access_token"]) in listed
    assert session_of(other["access_token"]) not in listed
    assert (await refresh(client, other["refresh_token"])).status == 200

    for token in (rotated["refresh_token"], "never-issued"):  # again, or unknown: still 204
        again = await client.post("/api/auth/logout", json={"refresh_token": token})
        assert again.status == 204
    for body in ({}, {"refresh_token": ""}, {"refresh_token": ["x"]}):
        bad = await client.post("/api/auth/logout", json=body)
        assert bad.status == 422
        assert "refresh_token" in (await bad.json())["error"]["details"]
    assert (await refresh(client, "x" * 300)).status == 422


async def test_the_revoked_list_is_internal_and_polling_it_leaves_no_access_lines(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await client.get("/internal/sessions/revoked")).status == 401
    wrong = {"X-Internal-Api-Key": "not-the-key"}
    assert (await client.get("/internal/sessions/revoked", headers=wrong)).status == 401
    with caplog.at_level(logging.INFO, logger="microshop.access"):
        await revoked(client)  # every gateway asks every few seconds
        await client.get("/.well-known/jwks.json")
    assert [r.getMessage().split()[:2] for r in caplog.records] == [
        ["GET", "/.well-known/jwks.json"]
    ]


async def test_refresh_tokens_expire_when_idle_and_a_login_at_its_maximum_age(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    idle = await aiohttp_client(create_app(config(test_env, refresh_token_ttl_seconds=1)))
    tokens = await logged_in(idle, uid, "idle")
    assert tokens["refresh_expires_in"] <= 1
    await asyncio.sleep(1.2)
    late = await refresh(idle, tokens["refresh_token"])
    assert (await late.json())["error"]["code"] == "invalid_refresh_token"

    short = await aiohttp_client(
        create_app(config(test_env, refresh_token_ttl_seconds=60, session_max_age_seconds=2))
    )
    tokens = await logged_in(short, uid, "short")
    assert tokens["refresh_expires_in"] <= 2  # never past the login's maximum age
    rotated = await (await refresh(short, tokens["refresh_token"])).json()
    assert rotated["refresh_expires_in"] <= 2
    await asyncio.sleep(2.2)
    assert (await refresh(short, rotated["refresh_token"])).status == 401


async def test_the_sweeper_deletes_ended_logins_and_keeps_live_and_recently_revoked_ones(
    client: Client, pool: Pool, uid: str
) -> None:
    users = [await register(client, f"sweep{n}.{uid}@example.com") for n in range(5)]
    tokens = RefreshTokens(pool, ttl=3600, max_age=86400)
    live, idle, expired, recent, old = [await tokens.start(u["id"]) for u in users]
    await tokens.revoke(recent.refresh_token)
    await tokens.revoke(old.refresh_token)
    await pool.execute(
        "UPDATE refresh_families SET revoked_at = now() - interval '2 hours' WHERE id = $1",
        uuid.UUID(old.session_id),
    )
    await pool.execute(  # its only token expired: nobody can use the login any more
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE family_id = $1",
        uuid.UUID(idle.session_id),
    )
    await pool.execute(  # past its maximum age
        "UPDATE refresh_families SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(expired.session_id),
    )

    app = client.app
    assert isinstance(app, web.Application)
    task = asyncio.create_task(sweep_forever(app, every=0.05))
    try:
        ended = [uuid.UUID(s.session_id) for s in (idle, expired, old)]
        async with asyncio.timeout(10):
            while await pool.fetchval(
                "SELECT count(*) FROM refresh_families WHERE id = ANY($1)", ended
            ):
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    kept = await pool.fetch(
        "SELECT id FROM refresh_families WHERE id = ANY($1)",
        [uuid.UUID(s.session_id) for s in (live, recent)],
    )
    assert len(kept) == 2
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = ANY($1)",
            [uuid.UUID(s.session_id) for s in (idle, expired, old)],
        )
        == 0
    )


@pytest.mark.parametrize("email", ["{admin}", "{upper}"])
async def test_the_admin_email_cannot_be_registered_through_the_api(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str, email: str
) -> None:
    admin = f"boss.{uid}@shop.test"
    client = await aiohttp_client(create_app(config(test_env, admin_email=admin)))
    resp = await client.post(
        "/api/auth/register",
        json={"email": email.format(admin=admin, upper=admin.upper()), "password": "squatting!"},
    )
    assert resp.status == 409, await resp.text()
    # the same answer as any taken email, whether the admin exists yet or not
    assert (await resp.json())["error"] == {
        "code": "email_taken",
        "message": "an account with this email exists",
        "details": {},
    }
    assert (await login(client, admin, "squatting!")).status == 401

"""auth-service on the real database: accounts, tokens, the JWKS, login throttling."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from eventstore import PostgresEventStore
from eventstore.vault import PersonalDataVault
from microshop.auth import TokenVerifier, keys_from_jwks
from microshop.config import Config
from services.auth.app import create_app
from services.auth.keys import kid_of
from tests.conftest import StackEnv
from tests.tokens import bearer

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
INTERNAL_KEY = "test-internal-key"


def config(env: StackEnv, **overrides: Any) -> Config:
    return env.config(internal_api_key=INTERNAL_KEY, **overrides)


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    return await aiohttp_client(create_app(config(test_env)))


def from_client(ip: str) -> dict[str, str]:
    """Headers the gateway adds: the caller's address, vouched for by the internal key."""
    return {"X-Forwarded-For": ip, "X-Internal-Api-Key": INTERNAL_KEY}


async def register(client: Client, email: str, password: str = "correct horse") -> Any:
    resp = await client.post("/api/auth/register", json={"email": email, "password": password})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def login(client: Client, email: str, password: str, **headers: str) -> Any:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def test_register_login_me_and_verify_through_the_jwks(
    client: Client, store: PostgresEventStore, vault: PersonalDataVault, uid: str
) -> None:
    email = f"Ada.{uid}@Example.com"
    account = await register(client, email)
    assert account["email"] == email.lower()

    resp = await login(client, email.upper(), "correct horse")
    assert resp.status == 200
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900  # 15 minutes: the longest an access token may live
    assert body["refresh_token"] and body["refresh_expires_in"] == 7 * 86400

    me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert await me.json() == {"id": account["id"], "email": email.lower(), "roles": ["user"]}

    jwks = await (await client.get("/.well-known/jwks.json")).json()
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and "d" not in k for k in jwks["keys"])
    verifier = TokenVerifier(
        _Keys(keys_from_jwks(jwks)), issuer="microshop-auth", audience="microshop"
    )
    principal = await verifier.verify(body["access_token"])
    assert principal.user_id == account["id"]
    assert principal.roles == frozenset({"user"})

    [event] = await store.read_stream(f"user-{account['id']}")
    assert (event.event_type, event.schema_version) == ("UserRegistered", 2)
    assert event.data.email.startswith("pii:1:")  # sealed with the person's key
    assert (await vault.reveal(event.data)).email == email.lower()


class _Keys:
    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    async def public_key(self, kid: str) -> Any | None:
        return self.keys.get(kid)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"email": "not-an-email", "password": "long enough"}, 422, "email"),
        ({"email": "a@example.com", "password": "short"}, 422, "password"),
        ({"email": "a@example.com"}, 422, "password"),
        ({"email": ["a@example.com"], "password": "long enough"}, 422, "email"),
        ({"email": "a@example.com", "password": "x" * 2000}, 422, "password"),
    ],
)
async def test_invalid_registrations_are_422(
    client: Client, body: dict[str, Any], status: int, field: str
) -> None:
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == status
    assert field in (await resp.json())["error"]["details"]


async def test_taken_email_is_409_whatever_its_case(client: Client, uid: str) -> None:
    await register(client, f"bob.{uid}@example.com")
    resp = await client.post(
        "/api/auth/register", json={"email": f"BOB.{uid}@example.com", "password": "different1"}
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "email_taken"


async def test_wrong_credentials_are_401(client: Client, uid: str) -> None:
    email = f"carol.{uid}@example.com"
    await register(client, email)
    client_ip = {
        "X-Forwarded-For": f"10.1.{secrets.randbelow(250)}.1",
        "X-Internal-Api-Key": INTERNAL_KEY,
    }
    for attempt in (
        await login(client, email, "wrong password", **client_ip),
        await login(client, f"nobody.{uid}@example.com", "correct horse", **client_ip),
    ):
        assert attempt.status == 401
        assert (await attempt.json())["error"]["code"] == "invalid_credentials"
    assert (await client.get("/api/auth/me")).status == 401
    assert (await client.get("/api/auth/me", headers=bearer("garbage"))).status == 401


async def test_repeated_failures_are_throttled_per_account_and_client_and_per_client(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    client = await aiohttp_client(
        create_app(config(test_env, login_max_failures=3, login_lockout_seconds=3600))
    )
    victim = f"dave.{uid}@example.com"
    await register(client, victim)

    guesser = from_client(f"10.2.{secrets.randbelow(250)}.{secrets.randbelow(250)}")
    for _ in range(3):  # one client: three free guesses at this account
        assert (await login(client, victim, "guess", **guesser)).status == 401
    locked = await login(client, victim, "correct horse", **guesser)
    assert locked.status == 429  # even with the right password: refused before checking it
    assert 1 <= int(locked.headers["Retry-After"]) <= 3600
    assert (await locked.json())["error"]["code"] == "login_throttled"
    # the owner on another client is not locked out (the old per-account lock did that)
    assert (await login(client, victim, "correct horse", **from_client("10.3.0.1"))).status == 200

    # one client guessing many accounts hits the per-client limit (4x the account limit)
    attacker = from_client(f"10.4.{secrets.randbelow(250)}.{secrets.randbelow(250)}")
    for n in range(12):
        await register(client, f"x{n}.{uid}@example.com")
        assert (await login(client, f"x{n}.{uid}@example.com", "guess", **attacker)).status == 401
    other = f"erin.{uid}@example.com"
    await register(client, other)
    assert (await login(client, other, "correct horse", **attacker)).status == 429
    assert (await login(client, other, "correct horse", **from_client("10.5.0.1"))).status == 200


async def test_an_unproven_forwarded_address_is_ignored(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    client = await aiohttp_client(
        create_app(config(test_env, login_max_failures=2, login_lockout_seconds=3600))
    )
    email = f"frank.{uid}@example.com"
    await register(client, email)
    for n in range(2):  # rotating X-Forwarded-For without the key does not dodge the limit
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert (await login(client, email, "guess", **headers)).status == 401
    assert (await login(client, email, "guess", **{"X-Forwarded-For": "203.0.113.9"})).status == 429


async def test_admin_account_and_signing_key_survive_restarts(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    admin_email, password = f"admin.{uid}@example.com", secrets.token_urlsafe(12)
    settings = config(test_env, admin_email=admin_email, admin_password=password)
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))  # another instance, same database

    token = (await (await login(first, admin_email, password)).json())["access_token"]
    me = await (await second.get("/api/auth/me", headers=bearer(token))).json()
    assert me["roles"] == ["user", "admin"]
    first_keys = await (await first.get("/.well-known/jwks.json")).json()
    second_keys = await (await second.get("/.well-known/jwks.json")).json()
    assert first_keys == second_keys


async def test_a_configured_private_key_signs(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    client = await aiohttp_client(create_app(config(test_env, jwt_private_key=pem)))
    email = f"gina.{uid}@example.com"
    await register(client, email)
    token = (await (await login(client, email, "correct horse")).json())["access_token"]
    import jwt

    assert jwt.get_unverified_header(token)["kid"] == kid_of(key.public_key())
    kids = {k["kid"] for k in (await (await client.get("/.well-known/jwks.json")).json())["keys"]}
    assert kid_of(key.public_key()) in kids

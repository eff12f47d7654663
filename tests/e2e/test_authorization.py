"""The authorization matrix against the real stack: at the gateway and at each service.

Bad tokens here are made with auth-service's real signing key (read from its table), so
only the one thing wrong with each token can be what gets it refused.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import StackEnv
from tests.e2e.client import signup
from tests.e2e.conftest import Stack
from tests.tokens import bearer


@pytest.fixture
async def real_key(test_env: StackEnv, stack: Stack) -> tuple[str, Any]:
    conn = await asyncpg.connect(test_env.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL"
            " ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await conn.close()
    assert row is not None
    return row["kid"], serialization.load_pem_private_key(row["private_pem"].encode(), None)


def sign(key: tuple[str, Any], **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "sub": str(uuid.uuid4()),
        "roles": ["user"],
        "iat": now,
        "exp": now + 600,
        "iss": "microshop-auth",
        "aud": "microshop",
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key[1], algorithm="RS256", headers={"kid": key[0]})


def tampered(token: str, **changes: Any) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def alg_none(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{body}."


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_valid_token_signed_with_the_real_key_works(
    http: aiohttp.ClientSession, stack: Stack, real_key: tuple[str, Any]
) -> None:
    resp = await http.get(f"{stack.url}/api/cart", headers=bearer(sign(real_key)))
    assert resp.status == 200  # the control: the forged ones below differ in one thing


@pytest.mark.parametrize(
    "make",
    [
        lambda key: sign(key, exp=int(time.time()) - 30),
        lambda key: sign(key, iss="evil"),
        lambda key: sign(key, aud="other-app"),
        lambda key: tampered(sign(key), roles=["user", "admin"]),
        lambda key: tampered(sign(key), sub=str(uuid.uuid4())),
        lambda key: alg_none(sign(key)),
        lambda key: jwt.encode(
            {"sub": "x"},
            "secret-secret-secret-secret-32b!",
            algorithm="HS256",
            headers={"kid": key[0]},
        ),
    ],
    ids=[
        "expired",
        "issuer",
        "audience",
        "tampered-roles",
        "tampered-subject",
        "alg-none",
        "hs256",
    ],
)
@pytest.mark.parametrize("target", ["gateway", "cart", "product", "auth"])
async def test_every_bad_token_is_refused_everywhere(
    http: aiohttp.ClientSession, stack: Stack, real_key: tuple[str, Any], make: Any, target: str
) -> None:
    token = make(real_key)
    base = stack.url if target == "gateway" else stack.service_url(target)
    path = {
        "gateway": "/api/cart",
        "cart": "/api/cart",
        "auth": "/api/auth/me",
        "product": "/api/products",
    }[target]
    method = "POST" if target == "product" else "GET"
    resp = await http.request(method, base + path, json={}, headers=bearer(token))
    assert resp.status == 401, await resp.text()


async def test_services_refuse_users_on_admin_routes_without_the_gateway(
    http: aiohttp.ClientSession, stack: Stack
) -> None:
    async with aiohttp.ClientSession(base_url=stack.url) as gateway:
        _, token = await signup(gateway)
    resp = await http.post(
        f"{stack.service_url('product')}/api/products",
        json={"sku": "X-1", "name": "x", "price": "1.00"},
        headers=bearer(token),
    )
    assert resp.status == 403

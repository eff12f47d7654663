"""Token verification: every way a token can be wrong is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable

import jwt
import pytest

from microshop.auth import Principal, TokenVerifier
from microshop.errors import Unauthorized
from tests.tokens import AUDIENCE, ISSUER, KID, PRIVATE_KEY, TEST_KEYS, admin_token, mint


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(TEST_KEYS, issuer=ISSUER, audience=AUDIENCE, leeway=0)


async def test_a_valid_token_names_the_caller(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(admin_token("user-1"))
    assert isinstance(principal, Principal)
    assert principal.user_id == "user-1"
    assert principal.is_admin


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["user", "admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _alg_none(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": KID}).encode())
    body = base64.urlsafe_b64encode(json.dumps(claims).encode())
    return f"{head.rstrip(b'=').decode()}.{body.rstrip(b'=').decode()}."


def _hs256_with_public_key(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(
        claims, "not-the-key-but-some-secret-of-32-bytes!", algorithm="HS256", headers={"kid": KID}
    )


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (lambda: mint(ttl=-60), "token_expired"),
        (lambda: mint(other_key=True), "invalid_token"),
        (lambda: _alg_none(mint()), "invalid_token"),
        (lambda: _hs256_with_public_key(mint()), "invalid_token"),
        (lambda: _tamper(mint()), "invalid_token"),
        (lambda: mint(iss="someone-else"), "invalid_token"),
        (lambda: mint(aud="another-app"), "invalid_token"),
        (lambda: mint(iat=int(time.time()) + 3600), "invalid_token"),
        (lambda: "not.a.token", "invalid_token"),
        (lambda: "", "invalid_token"),
    ],
    ids=[
        "expired",
        "other-key",
        "alg-none",
        "hs256",
        "tampered",
        "issuer",
        "audience",
        "issued-in-future",
        "garbage",
        "empty",
    ],
)
async def test_bad_tokens_are_refused(
    verifier: TokenVerifier, token: Callable[[], str], code: str
) -> None:
    """Each token is made when its test runs (made at collection, a good one would have
    expired by the time a long run gets here, and say so instead)."""
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token())
    assert caught.value.code == code


async def test_a_token_without_a_required_claim_is_refused(verifier: TokenVerifier) -> None:
    claims = jwt.decode(mint(), options={"verify_signature": False})
    del claims["jti"]
    token = jwt.encode(claims, PRIVATE_KEY, algorithm="RS256", headers={"kid": KID})
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


class CountingKeys:
    """TEST_KEYS, counting lookups (one per real signature check)."""

    def __init__(self) -> None:
        self.lookups = 0

    async def public_key(self, kid: str) -> object | None:
        self.lookups += 1
        return await TEST_KEYS.public_key(kid)


async def test_a_verified_token_is_remembered_until_it_expires() -> None:
    keys = CountingKeys()
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway=0, cache_size=2)
    token = mint("user-7", ttl=60)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert keys.lookups == 1  # the second time: no RSA verification

    with pytest.raises(Unauthorized):  # a forged variant is not the remembered token
        await verifier.verify(_tamper(token))

    others = [mint(), mint()]
    for other in others:  # the cache holds two: the first token falls out
        await verifier.verify(other)
    lookups = keys.lookups
    await verifier.verify(token)
    assert keys.lookups == lookups + 1

    brief = mint("user-8", ttl=1)
    await verifier.verify(brief)
    expires = jwt.decode(brief, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthorized) as refused:  # remembered, but not past its exp
        await verifier.verify(brief)
    assert refused.value.code == "token_expired"


async def test_a_remembered_token_is_checked_again_after_cache_seconds() -> None:
    keys = CountingKeys()
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, cache_seconds=0.05)
    token = mint(ttl=600)
    await verifier.verify(token)
    await verifier.verify(token)
    assert keys.lookups == 1
    await asyncio.sleep(0.1)  # a key withdrawn from the JWKS would be noticed from here on
    await verifier.verify(token)
    assert keys.lookups == 2


async def test_a_token_of_a_revoked_login_is_refused_even_when_remembered(
    verifier: TokenVerifier,
) -> None:
    ended, alive = mint(sid="login-1"), mint(sid="login-2")
    assert (await verifier.verify(ended)).session_id == "login-1"  # now remembered
    verifier.revoked_sessions = frozenset({"login-1"})
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(ended)
    assert refused.value.code == "token_revoked"
    assert (await verifier.verify(alive)).session_id == "login-2"
    assert (await verifier.verify(mint())).session_id is None  # a token without a login

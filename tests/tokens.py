"""Test tokens: an RSA key pair of the test's own, served as a key source, and a minter.

Services under test are built with `make_app(..., token_keys=TEST_KEYS)`, so tokens minted
here verify exactly as auth-service's would (same claims, RS256, kid lookup).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from microshop.auth import ALGORITHM, ROLE_ADMIN, ROLE_USER

ISSUER = "microshop-auth"
AUDIENCE = "microshop"


class StaticKeys:
    """A key source holding fixed public keys by kid."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    async def public_key(self, kid: str) -> Any | None:
        return self.keys.get(kid)


PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-key"
TEST_KEYS = StaticKeys({KID: PRIVATE_KEY.public_key()})


def mint(
    user_id: str | None = None,
    roles: tuple[str, ...] = (ROLE_USER,),
    *,
    ttl: int = 600,
    other_key: bool = False,
    **claims: Any,
) -> str:
    """A signed access token; `other_key` signs with a key no service trusts."""
    now = int(time.time())
    payload = {
        "sub": user_id or str(uuid.uuid4()),
        "roles": list(roles),
        "iat": now,
        "exp": now + ttl,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    key = _OTHER if other_key else PRIVATE_KEY
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": KID})


def admin_token(user_id: str | None = None) -> str:
    return mint(user_id, (ROLE_USER, ROLE_ADMIN))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

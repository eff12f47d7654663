"""Access tokens and rotating refresh tokens.

An access token is an RS256 JWT that lives at most 15 minutes (`JWT_TTL_SECONDS`) and names
its login in the `sid` claim. A login is a *family* of refresh tokens: logging in starts one
and hands out its first token, each refresh retires the token presented and hands out the
next. What holds:

- Only the SHA-256 of a refresh token is stored (a token is 256 random bits, so a plain
  hash is enough): the tables cannot log anyone in.
- A token rotates at most once: rotating is one UPDATE of the row while it is unused, so
  of two refreshes racing with the same token the row lock lets exactly one through.
- A token presented after it was rotated is reuse — someone kept a copy — and revokes the
  whole family, the copy's holder's tokens and the owner's alike (401). The loser of a race
  counts as reuse too: the server cannot tell a double click from a thief racing the owner,
  so clients refresh one at a time (the React app and the pages do).
- A family ends when revoked (logout, reuse), when its newest token goes unused for
  `REFRESH_TOKEN_TTL_SECONDS`, or `SESSION_MAX_AGE_SECONDS` after the login, whatever
  refreshing did; `sweep` deletes what ended.
- `revoked_within` lists the families revoked recently enough for an access token of theirs
  to be alive still; the gateway refuses those tokens (`microshop.auth.TokenVerifier`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
import time
import uuid
from typing import Any, ClassVar

import jwt

from eventstore.pg import Pool
from microshop.auth import ALGORITHM
from microshop.config import Config

from .accounts import Account
from .keys import KeyStore

__all__ = [
    "Issued",
    "RefreshInvalid",
    "RefreshRefused",
    "RefreshReused",
    "RefreshTokens",
    "access_token",
]


def access_token(config: Config, keys: KeyStore, account: Account, session_id: str) -> str:
    """A signed access token of `account` for the login `session_id`."""
    now = int(time.time())
    claims = {
        "sub": account.id,
        "email": account.email,
        "roles": list(account.roles),
        "sid": session_id,
        "iat": now,
        "exp": now + config.jwt_ttl_seconds,
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, keys.signing_key, algorithm=ALGORITHM, headers={"kid": keys.kid})


class RefreshRefused(Exception):
    """The refresh token cannot be used (answered 401 with `code`)."""

    code: ClassVar[str]
    message: ClassVar[str]


class RefreshInvalid(RefreshRefused):
    code = "invalid_refresh_token"
    message = "the refresh token is unknown, expired or revoked: log in again"


class RefreshReused(RefreshRefused):
    code = "refresh_token_reused"
    message = "the refresh token was already used: this login is revoked, log in again"


@dataclasses.dataclass(frozen=True, slots=True)
class Issued:
    """A refresh token just handed out, and the login it belongs to."""

    session_id: str
    user_id: str
    refresh_token: str
    expires_in: int
    """Seconds the refresh token stays usable."""


def _whole_seconds(seconds: Any) -> int:
    """A lifetime for clients: rounded up, never 0 while the token still works."""
    return max(1, math.ceil(float(seconds)))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_ROTATE = """
WITH used AS (
    UPDATE refresh_tokens t SET used_at = now()
    FROM refresh_families f
    WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()
      AND f.id = t.family_id AND f.revoked_at IS NULL AND f.expires_at > now()
    RETURNING t.family_id, f.user_id, f.expires_at AS family_expires
), next AS (
    INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
    SELECT $2, family_id, least(now() + make_interval(secs => $3), family_expires) FROM used
    RETURNING family_id, expires_at
)
SELECT next.family_id, used.user_id, extract(epoch FROM next.expires_at - now()) AS expires_in
FROM next JOIN used USING (family_id)
"""


class RefreshTokens:
    """The refresh token families in Postgres."""

    def __init__(self, pool: Pool, *, ttl: int, max_age: int) -> None:
        self.pool = pool
        self.ttl = ttl
        self.max_age = max_age

    async def start(self, user_id: str) -> Issued:
        """A new login of `user_id`: a family and its first token."""
        token, family = secrets.token_urlsafe(32), uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO refresh_families (id, user_id, expires_at)"
                " VALUES ($1, $2, now() + make_interval(secs => $3))",
                family,
                uuid.UUID(user_id),
                float(self.max_age),
            )
            expires_in = await conn.fetchval(
                "INSERT INTO refresh_tokens (token_hash, family_id, expires_at)"
                " SELECT $1, $2, least(now() + make_interval(secs => $3), expires_at)"
                " FROM refresh_families WHERE id = $2"
                " RETURNING extract(epoch FROM expires_at - now())",
                _digest(token),
                family,
                float(self.ttl),
            )
        return Issued(str(family), user_id, token, _whole_seconds(expires_in))

    async def rotate(self, token: str) -> Issued:
        """Retire `token` and hand out the next of its family. A token already rotated
        revokes the family (`RefreshReused`); an unknown, expired or revoked one is
        `RefreshInvalid`."""
        following = secrets.token_urlsafe(32)
        row = await self.pool.fetchrow(_ROTATE, _digest(token), _digest(following), float(self.ttl))
        if row is not None:
            return Issued(
                str(row["family_id"]),
                str(row["user_id"]),
                following,
                _whole_seconds(row["expires_in"]),
            )
        async with self.pool.acquire() as conn, conn.transaction():
            known = await conn.fetchrow(
                "SELECT family_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                _digest(token),
            )
            if known is None or known["used_at"] is None:
                raise RefreshInvalid
            await conn.execute(
                "UPDATE refresh_families SET revoked_at = now(), revoked_because = 'reuse'"
                " WHERE id = $1 AND revoked_at IS NULL",
                known["family_id"],
            )
        raise RefreshReused

    async def revoke(self, token: str) -> str | None:
        """Log out: revoke the family of `token` (any of its tokens will do); its id, or
        None when the token is unknown or its family had ended already."""
        family = await self.pool.fetchval(
            "UPDATE refresh_families f SET revoked_at = now(), revoked_because = 'logout'"
            " FROM refresh_tokens t WHERE t.token_hash = $1 AND f.id = t.family_id"
            " AND f.revoked_at IS NULL AND f.expires_at > now() RETURNING f.id",
            _digest(token),
        )
        return None if family is None else str(family)

    async def revoked_within(self, seconds: float) -> list[str]:
        """The families revoked in the last `seconds`."""
        rows = await self.pool.fetch(
            "SELECT id FROM refresh_families WHERE revoked_at > now() - make_interval(secs => $1)",
            float(seconds),
        )
        return [str(row["id"]) for row in rows]

    async def sweep(self, keep_revoked: float) -> int:
        """Delete the families that ended (a revoked one after `keep_revoked` seconds, while
        `revoked_within` may still need it) and expired tokens; how many families went."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM refresh_tokens WHERE expires_at <= now()")
            status = await conn.execute(
                """DELETE FROM refresh_families f
                   WHERE CASE WHEN f.revoked_at IS NOT NULL
                              THEN f.revoked_at <= now() - make_interval(secs => $1)
                              ELSE f.expires_at <= now()
                                   OR NOT EXISTS (SELECT FROM refresh_tokens t
                                                  WHERE t.family_id = f.id)
                         END""",
                float(keep_revoked),
            )
        return int(status.rpartition(" ")[2])

"""Who is calling: RS256 access tokens verified through the JWKS, and the internal API key.

Every service verifies tokens itself (the gateway checks at the edge too): the signature
with a public key from auth-service's JWKS, `alg` pinned to RS256, and `exp`, `iat`, `iss`,
`aud` and `sub` required. There is no shared secret. A token names its login (`sid`); a
verifier told which logins have ended (the gateway learns them from auth-service) refuses
their tokens before they expire. A token of an account that was forgotten is refused as
soon as the service has seen it in `forgotten_users` (a second at most), however long the
token would still live. Internal endpoints take the
`X-Internal-Api-Key` header, compared in constant time; with no key configured they stay
closed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import asyncpg
import jwt
from aiohttp import web
from jwt.algorithms import RSAAlgorithm

from eventstore.pg import Executor

from . import context
from .appkeys import CONFIG
from .client import ServiceClient, UpstreamError
from .errors import Forbidden, Unauthorized

__all__ = [
    "ALGORITHM",
    "PRINCIPAL",
    "ROLE_ADMIN",
    "ROLE_USER",
    "VERIFIER",
    "ForgottenUsers",
    "JwksKeys",
    "KeySource",
    "Principal",
    "TokenVerifier",
    "authenticate",
    "client_address",
    "from_peer",
    "peer_causation",
    "require_admin",
    "require_internal",
    "verifier_context",
]

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
ROLE_USER = "user"
ROLE_ADMIN = "admin"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid token names."""

    user_id: str
    roles: frozenset[str]
    token_id: str
    email: str | None = None
    session_id: str | None = None
    """The login (refresh token family) the token was issued for; None for other tokens."""

    @property
    def is_admin(self) -> bool:
        return ROLE_ADMIN in self.roles


class KeySource(Protocol):
    """Where verifiers find the public key of a `kid`."""

    async def public_key(self, kid: str) -> Any | None: ...


class JwksKeys:
    """Public keys from auth-service's JWKS, cached; an unknown `kid` triggers a
    (rate-limited) refetch, so a key rotated in at auth-service is picked up without a
    restart."""

    def __init__(
        self,
        auth: ServiceClient,
        *,
        path: str = "/.well-known/jwks.json",
        max_age: float = 300.0,
        min_refetch_interval: float = 5.0,
    ) -> None:
        self.auth = auth
        self.path = path
        self._max_age = max_age
        self._min_interval = min_refetch_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> Any | None:
        if kid in self._keys and time.monotonic() - self._fetched_at < self._max_age:
            return self._keys[kid]
        async with self._lock:  # unknown kid or stale keys: refetch, but not in a tight loop
            if time.monotonic() - self._fetched_at >= self._min_interval:
                await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            reply = await self.auth.get(self.path)
        except UpstreamError as exc:
            log.warning("cannot fetch the JWKS: %s", exc.message)
            return  # keep the keys we had
        if not reply.ok or reply.body is None:
            log.warning("cannot fetch the JWKS: HTTP %d", reply.status)
            return
        self._keys = keys_from_jwks(reply.body)


def keys_from_jwks(document: Any) -> dict[str, Any]:
    """RSA public keys by `kid` from a JWKS document; anything else in it is ignored."""
    keys: dict[str, Any] = {}
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "kid" not in jwk:
            continue
        if jwk.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[str(jwk["kid"])] = RSAAlgorithm.from_jwk(json.dumps(jwk))
        except (jwt.InvalidKeyError, ValueError, KeyError) as exc:
            log.warning("skipping unusable JWK %s: %s", jwk.get("kid"), exc)
    return keys


class ForgottenUsers:
    """The accounts forgotten in the last `max_age` seconds (older ones have no token left
    that could still be valid), read again from the `forgotten_users` table each refresh
    (a whole read: a forgetting that commits late is never skipped)."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._at: dict[str, float] = {}  # user id -> when forgotten (epoch seconds)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._at

    def add(self, user_id: str) -> None:
        """Known at once in this process (the one that forgot the account)."""
        self._at[user_id] = time.time()

    async def refresh(self, db: Executor) -> int:
        """Read the recently forgotten accounts; how many there are."""
        rows = await db.fetch(
            "SELECT user_id, extract(epoch FROM forgotten_at)::float8 FROM forgotten_users"
            " WHERE forgotten_at > now() - make_interval(secs => $1)",
            self.max_age,
        )
        horizon = time.time() - self.max_age
        known = {user_id: at for user_id, at in self._at.items() if at >= horizon}
        known.update((row[0], row[1]) for row in rows)
        self._at = known
        return len(rows)

    async def follow(self, db: Executor, interval: float = 1.0) -> None:
        """Refresh every `interval` seconds, forever; a failed refresh is tried again (and
        logged once until one succeeds)."""
        failing = False
        while True:
            try:
                await self.refresh(db)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not failing:
                    log.warning("cannot read the forgotten accounts (retrying): %s", exc)
                failing = True
            else:
                failing = False
            await asyncio.sleep(interval)


class TokenVerifier:
    """Turns a bearer token into a `Principal`, or raises `Unauthorized`.

    A token that passed every check is remembered (up to `cache_size`, least recently used
    out) until it expires, but at most `cache_seconds` (the JWKS refresh interval, so a key
    withdrawn from the JWKS stops being honoured as soon as without the cache), so the
    same token on the next request costs a dictionary lookup instead of an RSA
    verification; an expired one is verified again, and refused.

    `revoked_sessions` holds the logins that ended (logout, a reused refresh token) while
    their access tokens may still be alive: a token of one of them is refused
    (`token_revoked`), cached or not. Whoever knows them replaces the set (the gateway's
    poller); it is empty by default.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: float = 5.0,
        cache_size: int = 10_000,
        cache_seconds: float = 300.0,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self.revoked_sessions: frozenset[str] = frozenset()
        self.forgotten: ForgottenUsers | None = None  # set where a database is at hand
        self._verified: collections.OrderedDict[str, tuple[Principal, float]] = (
            collections.OrderedDict()
        )

    async def verify(self, token: str) -> Principal:
        principal = await self._cached_or_verified(token)
        if principal.session_id is not None and principal.session_id in self.revoked_sessions:
            raise Unauthorized("this login has ended (logged out)", code="token_revoked")
        if self.forgotten is not None and principal.user_id in self.forgotten:
            raise Unauthorized("this account has been forgotten", code="account_forgotten")
        return principal

    async def _cached_or_verified(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, min(expires, time.time() + self.cache_seconds))
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is malformed", code="invalid_token") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"only {ALGORITHM} tokens are accepted", code="invalid_token")
        kid = header.get("kid")
        key = await self.keys.public_key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("the token is signed by an unknown key", code="invalid_token")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired", code="token_expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("invalid token: roles", code="invalid_token")
        email, session_id = claims.get("email"), claims.get("sid")
        principal = Principal(
            user_id=str(claims["sub"]),
            roles=frozenset(roles),
            token_id=str(claims["jti"]),
            email=email if isinstance(email, str) else None,
            session_id=session_id if isinstance(session_id, str) else None,
        )
        return principal, float(claims["exp"])


VERIFIER = web.AppKey("verifier", TokenVerifier)
PRINCIPAL = web.RequestKey("principal", Principal)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: web.Request) -> Principal:
    """The verified caller of `request` (401 without a valid bearer token)."""
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="microshop"'})
    principal = await request.app[VERIFIER].verify(token)
    request[PRINCIPAL] = principal
    return principal


async def require_admin(request: web.Request) -> Principal:
    """The caller, who must have the `admin` role (401 without a token, 403 without the role)."""
    principal = await authenticate(request)
    if not principal.is_admin:
        raise Forbidden("this needs the admin role")
    return principal


def require_internal(request: web.Request) -> None:
    """Let only callers with the internal API key through; an unset key lets nobody in."""
    expected = request.app[CONFIG].internal_api_key
    given = request.headers.get("X-Internal-Api-Key", "")
    if not expected:
        raise Forbidden(
            "internal endpoints are closed: INTERNAL_API_KEY is not set", code="internal_closed"
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("a valid X-Internal-Api-Key is required", code="bad_internal_key")


def verifier_context(keys: KeySource | None = None) -> Any:
    """Cleanup context that puts a `TokenVerifier` under `VERIFIER`.

    By default keys come from auth-service's JWKS over HTTP (needs `http_client_context`);
    auth-service passes its own key store instead.
    """

    async def context_(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        source = keys or JwksKeys(ServiceClient.of(app, "auth"))
        app[VERIFIER] = TokenVerifier(
            source, issuer=config.jwt_issuer, audience=config.jwt_audience
        )
        yield

    return context_


def from_peer(request: web.Request) -> bool:
    """Whether the caller proved it is one of our services (a valid internal API key)."""
    expected = request.app[CONFIG].internal_api_key
    given = request.headers.get("X-Internal-Api-Key", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def client_address(request: web.Request) -> str:
    """The caller's IP address. `X-Forwarded-For` counts only from the gateway, which proves
    itself with the internal API key; anyone else could put any address there."""
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and from_peer(request):
        return forwarded.split(",")[0].strip()
    return request.remote or "unknown"


def peer_causation(request: web.Request) -> str | None:
    """The event a peer says caused this call (`X-Causation-ID`, from a consumer acting on
    it), for the metadata of the events the call records. Only a caller with the internal
    API key names causes: a client's header is ignored, so no request can make its events
    look caused by someone else's."""
    if not from_peer(request):
        return None
    return context.valid_id(request.headers.get("X-Causation-ID"))

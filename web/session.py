"""Who is browsing: the access token in a cookie, verified on every request, refreshed on
the server when it expired, and CSRF tokens.

The session cookie holds the RS256 access token auth-service issued (at most 15 minutes).
It is never trusted as it stands: every request verifies its signature, `exp`, `iss`, `aud`
and whether its login was revoked through the app's `TokenVerifier`, exactly like a bearer
token. The refresh token lives in a cookie of its own; when the access cookie has expired
(the browser dropped it) or no longer verifies, the page trades the refresh token at
auth-service for a new pair and the answer sets both cookies (`web.refresh`). A refused
refresh (revoked, reused, expired) logs the browser out; auth-service being unreachable
leaves the cookies for the next request. Both cookies are `HttpOnly; SameSite=Strict;
Path=/` (and `Secure` over https); each lives as long as its token. Logging out revokes the
login at auth-service (`POST /api/auth/logout`) and deletes both.

CSRF: a signed double-submit cookie. The browser gets a random nonce in the `HttpOnly`
cookie `microshop_csrf`; every form carries `HMAC(secret, nonce)`, and a POST passes only
when the form's token matches the cookie's nonce (compared in constant time) and an
`Origin` header, when sent, names this host. Someone who can plant a cookie still cannot
mint the matching token without the secret. The secret is derived from `INTERNAL_API_KEY`
(shared by every gateway of a stack) or, without one, random per process. Login rotates the
nonce.

Cookies are written by `finish`, which the page wrapper calls on every answer (a page, an
error page or a redirect), from what the request decided: a new session, a dropped one, a
new nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from urllib.parse import quote, urlsplit

from aiohttp import web

from microshop.auth import VERIFIER, Principal
from microshop.errors import Unauthorized

from .errors import PageError, Redirect
from .refresh import REFRESHES, Pair
from .upstream import call

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_SECRET",
    "REFRESH_COOKIE",
    "SESSION_COOKIE",
    "access_token",
    "check_csrf",
    "csrf_secret_for",
    "csrf_token",
    "current_user",
    "end_session",
    "finish",
    "login_url",
    "refresh_token",
    "require_admin",
    "require_user",
    "safe_next",
    "start_session",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "microshop_session"
REFRESH_COOKIE = "microshop_refresh"
CSRF_COOKIE = "microshop_csrf"
CSRF_FIELD = "csrf_token"

CSRF_SECRET = web.AppKey("csrf_secret", bytes)
_USER = web.RequestKey[Principal | None]("page_user")
_TOKEN = web.RequestKey("page_token", str)
_NEW_NONCE = web.RequestKey("csrf_new_nonce", str)
_NEW_SESSION = web.RequestKey("new_session", Pair)
_DROP = web.RequestKey("drop_cookies", frozenset[str])


def csrf_secret_for(internal_api_key: str) -> bytes:
    """The CSRF signing key: derived from the internal key, or random without one."""
    if not internal_api_key:
        return secrets.token_bytes(32)
    return hmac.new(internal_api_key.encode(), b"microshop web csrf v1", hashlib.sha256).digest()


# -- the session -------------------------------------------------------------------------


async def current_user(request: web.Request) -> Principal | None:
    """The verified user of the session cookie (refreshed when it expired), or None."""
    if _USER in request:
        return request[_USER]
    token = request.cookies.get(SESSION_COOKIE)
    principal: Principal | None = None
    if token:
        try:
            principal = await request.app[VERIFIER].verify(token)
        except Unauthorized:
            request[_DROP] = frozenset({SESSION_COOKIE})  # expired or forged: forget it
        else:
            request[_TOKEN] = token
    if principal is None and refresh_token(request):
        principal = await _refreshed(request, refresh_token(request))
    request[_USER] = principal
    return principal


def refresh_token(request: web.Request) -> str:
    """The refresh cookie's token ('' without one)."""
    return request.cookies.get(REFRESH_COOKIE, "")


async def _refreshed(request: web.Request, token: str) -> Principal | None:
    """The user after trading `token` for a new pair (set on the answer), or None."""
    try:
        pair = await request.app[REFRESHES].refresh(token, lambda t: _trade(request, t))
    except PageError as exc:  # auth-service unavailable: keep the cookie for next time
        log.warning("cannot refresh a page session: %s", exc.message)
        return None
    if pair is None:
        end_session(request)
        return None
    start_session(request, pair, new_nonce=False)  # the old refresh token is spent: keep the new
    try:
        return await request.app[VERIFIER].verify(pair.access_token)
    except Unauthorized as exc:  # auth-service issued what its own JWKS does not verify
        log.warning("a refreshed token does not verify: %s", exc.message)
        return None


async def _trade(request: web.Request, token: str) -> Pair | None:
    answer = await call(request, "auth", "POST", "/api/auth/refresh", json={"refresh_token": token})
    if answer.status in (401, 422):
        return None
    pair = Pair.of(answer.body) if answer.ok else None
    if pair is None:
        raise PageError(502, "Refreshing the session failed", answer.error_message)
    return pair


def access_token(request: web.Request) -> str:
    """The verified session token (call `current_user` first)."""
    return request[_TOKEN]


def login_url(request: web.Request) -> str:
    return "/login?next=" + quote(request.path_qs, safe="/")


async def require_user(request: web.Request) -> Principal:
    """The logged-in user; anyone else is sent to the login page (and back afterwards)."""
    user = await current_user(request)
    if user is None:
        raise Redirect(login_url(request), status=302)
    return user


async def require_admin(request: web.Request) -> Principal:
    """The logged-in admin: not logged in → login page; logged in without the role → 403."""
    user = await require_user(request)
    if not user.is_admin:
        raise PageError(403, "Admins only", "Your account does not have the admin role.")
    return user


def start_session(request: web.Request, pair: Pair, *, new_nonce: bool = True) -> None:
    """Log in (or go on after a refresh): the answer sets both token cookies, and after a
    login a fresh CSRF nonce."""
    request[_NEW_SESSION] = pair
    request[_TOKEN] = pair.access_token
    request.pop(_DROP, None)
    if new_nonce:
        request[_NEW_NONCE] = secrets.token_urlsafe(32)


def end_session(request: web.Request) -> None:
    """Log out: the answer deletes both token cookies."""
    request.pop(_NEW_SESSION, None)
    request[_DROP] = frozenset({SESSION_COOKIE, REFRESH_COOKIE})


def _cookie(
    response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def finish(request: web.Request, response: web.StreamResponse) -> None:
    """Cookies the answer owes the browser: a new CSRF nonce, a new or a dropped session."""
    if _NEW_NONCE in request:
        _cookie(response, request, CSRF_COOKIE, request[_NEW_NONCE], None)
    if _NEW_SESSION in request:
        pair = request[_NEW_SESSION]
        _cookie(response, request, SESSION_COOKIE, pair.access_token, pair.expires_in)
        _cookie(response, request, REFRESH_COOKIE, pair.refresh_token, pair.refresh_expires_in)
    for name in sorted(request.get(_DROP, ())):
        response.del_cookie(name, path="/", secure=request.secure, httponly=True, samesite="Strict")


# -- CSRF --------------------------------------------------------------------------------


def _sign(request: web.Request, nonce: str) -> str:
    mac = hmac.new(request.app[CSRF_SECRET], nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _nonce(request: web.Request) -> str | None:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    return nonce if 20 <= len(nonce) <= 100 else None


def csrf_token(request: web.Request) -> str:
    """The token forms of this page carry (a nonce cookie is set when the browser has none)."""
    nonce = _nonce(request)
    if nonce is None:
        if _NEW_NONCE not in request:
            request[_NEW_NONCE] = secrets.token_urlsafe(32)
        nonce = request[_NEW_NONCE]
    return _sign(request, nonce)


async def check_csrf(request: web.Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token and origin check out (else a 403 page)."""
    form = await request.post()
    given = form.get(CSRF_FIELD)
    nonce = _nonce(request)
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise PageError(403, "Cross-site request refused", "This form was sent from another site.")
    if (
        nonce is None
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), _sign(request, nonce).encode())
    ):
        raise PageError(
            403,
            "Form expired",
            "The form's security token is missing or stale: reload the page and try again.",
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` when it is a path on this site (never another host), else `default`."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value

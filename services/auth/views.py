"""auth-service routes: register, login, refresh, logout, me and the JWKS."""

from __future__ import annotations

import math

from aiohttp import web

from microshop import context
from microshop.appkeys import CONFIG
from microshop.auth import authenticate, client_address, require_internal
from microshop.errors import TooManyRequests, Unauthorized
from microshop.http import json_response, read_json
from microshop.openapi import documented

from .accounts import Account, EmailTaken
from .appkeys import ACCOUNTS, KEYS, REFRESH_TOKENS, THROTTLE
from .domain import normalize_email
from .openapi import AccountSchema, JwksSchema, MeSchema, TokenSchema
from .passwords import hash_password, verify_password
from .schemas import LoginSchema, RefreshSchema, RegisterSchema
from .throttle import LoginAttempt
from .tokens import Issued, RefreshRefused, access_token

routes = web.RouteTableDef()

REVOCATION_MARGIN = 30
"""Seconds a revoked login stays listed beyond the access token lifetime (clock skew, the
verifiers' leeway, the gateway's poll interval)."""


@routes.post("/api/auth/register")
@documented(request=RegisterSchema, status=201, response=AccountSchema, errors=(400, 409, 422))
async def register(request: web.Request) -> web.Response:
    """Create an account."""
    body = await read_json(request, RegisterSchema())
    if normalize_email(body["email"]) == normalize_email(request.app[CONFIG].admin_email):
        # reserved for the admin `microshop seed` creates, before and after it does
        raise EmailTaken(body["email"])
    password_hash = await hash_password(body["password"])
    meta = context.event_metadata("auth")
    event = await request.app[ACCOUNTS].create(body["email"], password_hash, metadata=meta)
    return json_response({"id": event.user_id, "email": event.email}, status=201)


@routes.post("/api/auth/login")
@documented(request=LoginSchema, response=TokenSchema, errors=(400, 401, 422, 429))
async def login(request: web.Request) -> web.Response:
    """Log in: an access token and the first refresh token of this login."""
    body = await read_json(request, LoginSchema())
    accounts, throttle = request.app[ACCOUNTS], request.app[THROTTLE]
    account = await accounts.by_email(body["email"])
    attempt = LoginAttempt.of(body["email"], client_address(request), known=account is not None)
    wait = await throttle.admit(attempt)
    if wait > 0:
        raise TooManyRequests(
            "too many failed logins; try again later",
            code="login_throttled",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    if not await verify_password(body["password"], account.password_hash if account else None):
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    assert account is not None
    await throttle.succeeded(attempt)
    return _tokens(request.app, account, await request.app[REFRESH_TOKENS].start(account.id))


@routes.post("/api/auth/refresh")
@documented(request=RefreshSchema, response=TokenSchema, errors=(400, 401, 422))
async def refresh(request: web.Request) -> web.Response:
    """Trade a refresh token for a new pair (the old one is retired; reusing it revokes
    the login)."""
    body = await read_json(request, RefreshSchema())
    try:
        issued = await request.app[REFRESH_TOKENS].rotate(body["refresh_token"])
    except RefreshRefused as exc:
        raise Unauthorized(exc.message, code=exc.code) from None
    account = await request.app[ACCOUNTS].by_id(issued.user_id)
    if account is None:  # deleted meanwhile (its families go with it)
        raise Unauthorized("the account of this login no longer exists", code="invalid_token")
    return _tokens(request.app, account, issued)


@routes.post("/api/auth/logout")
@documented(request=RefreshSchema, status=204, errors=(400, 422))
async def logout(request: web.Request) -> web.Response:
    """Log out: revoke the login of this refresh token (every token of it, access tokens
    at the gateway too). Answers 204 whether or not the login was still alive."""
    body = await read_json(request, RefreshSchema())
    await request.app[REFRESH_TOKENS].revoke(body["refresh_token"])
    return web.Response(status=204)


def _tokens(app: web.Application, account: Account, issued: Issued) -> web.Response:
    config = app[CONFIG]
    return json_response(
        {
            "access_token": access_token(config, app[KEYS], account, issued.session_id),
            "token_type": "Bearer",
            "expires_in": config.jwt_ttl_seconds,
            "refresh_token": issued.refresh_token,
            "refresh_expires_in": issued.expires_in,
        }
    )


@routes.get("/internal/sessions/revoked")
async def revoked_sessions(request: web.Request) -> web.Response:
    """The logins revoked recently enough for their access tokens to be alive still (the
    gateway polls it and refuses those tokens)."""
    require_internal(request)
    config = request.app[CONFIG]
    window = config.jwt_ttl_seconds + REVOCATION_MARGIN
    sessions = await request.app[REFRESH_TOKENS].revoked_within(window)
    return json_response({"sessions": sessions, "window_seconds": window})


@routes.get("/api/auth/me")
@documented(response=MeSchema, errors=(401,))
async def me(request: web.Request) -> web.Response:
    """The caller's account."""
    principal = await authenticate(request)
    account = await request.app[ACCOUNTS].by_id(principal.user_id)
    if account is None:
        raise Unauthorized("the account of this token no longer exists", code="invalid_token")
    return json_response({"id": account.id, "email": account.email, "roles": list(account.roles)})


@routes.get("/.well-known/jwks.json")
@documented(response=JwksSchema)
async def jwks(request: web.Request) -> web.Response:
    """Public keys that verify access tokens."""
    return json_response(request.app[KEYS].jwks(), headers={"Cache-Control": "max-age=300"})

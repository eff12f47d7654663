"""auth-service routes: register, login, me and the JWKS."""

from __future__ import annotations

import time
import uuid

import jwt
from aiohttp import web

from microshop import context
from microshop.appkeys import CONFIG
from microshop.auth import ALGORITHM, authenticate, client_address
from microshop.errors import TooManyRequests, Unauthorized
from microshop.http import json_response, read_json
from microshop.openapi import documented

from .accounts import Account
from .appkeys import ACCOUNTS, KEYS
from .domain import normalize_email
from .openapi import AccountSchema, JwksSchema, MeSchema, TokenSchema
from .passwords import hash_password, verify_password
from .schemas import LoginSchema, RegisterSchema

routes = web.RouteTableDef()

CLIENT_FACTOR = 4


@routes.post("/api/auth/register")
@documented(request=RegisterSchema, status=201, response=AccountSchema, errors=(400, 409, 422))
async def register(request: web.Request) -> web.Response:
    """Create an account."""
    body = await read_json(request, RegisterSchema())
    password_hash = await hash_password(body["password"])
    meta = context.event_metadata("auth")
    event = await request.app[ACCOUNTS].create(body["email"], password_hash, metadata=meta)
    return json_response({"id": event.user_id, "email": event.email}, status=201)


@routes.post("/api/auth/login")
@documented(request=LoginSchema, response=TokenSchema, errors=(400, 401, 422, 429))
async def login(request: web.Request) -> web.Response:
    """Get an access token."""
    body = await read_json(request, LoginSchema())
    config, accounts = request.app[CONFIG], request.app[ACCOUNTS]
    account_key = f"account:{normalize_email(body['email'])}"
    client_key = f"client:{client_address(request)}"
    keys, window = [account_key, client_key], config.login_lockout_seconds
    # one account: a few tries; one client (maybe a NAT of many users): a few times more
    wait = max(
        await accounts.locked_for([account_key], config.login_max_failures, window),
        await accounts.locked_for([client_key], CLIENT_FACTOR * config.login_max_failures, window),
    )
    if wait > 0:
        raise TooManyRequests(
            "too many failed logins; try again later",
            code="login_throttled",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )
    account = await accounts.by_email(body["email"])
    if not await verify_password(body["password"], account.password_hash if account else None):
        await accounts.record_failure(keys, window)
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    assert account is not None
    await accounts.clear_failures(account_key)
    token, ttl = issue_token(request.app, account)
    return json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl})


def issue_token(app: web.Application, account: Account) -> tuple[str, int]:
    config, keys = app[CONFIG], app[KEYS]
    now = int(time.time())
    claims = {
        "sub": account.id,
        "email": account.email,
        "roles": list(account.roles),
        "iat": now,
        "exp": now + config.jwt_ttl_seconds,
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, keys.signing_key, algorithm=ALGORITHM, headers={"kid": keys.kid})
    return token, config.jwt_ttl_seconds


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

"""auth-service: accounts, login with throttling, RS256 tokens and the JWKS (port 8001)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from microshop.app import background, make_app
from microshop.appkeys import CONFIG, STORE
from microshop.config import Config

from . import events as _events  # noqa: F401  (registers UserRegistered)
from .accounts import Accounts
from .appkeys import ACCOUNTS, KEYS, REFRESH_TOKENS, THROTTLE
from .domain.throttle import ThrottlePolicy
from .keys import KeyStore
from .privacy import privacy_routes
from .seed import AdminEmailTaken, ensure_admin
from .throttle import LoginThrottle
from .tokens import RefreshTokens
from .views import REVOCATION_MARGIN, routes

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
"""How often expired login attempts and ended logins are deleted."""


async def accounts_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = app[STORE].pool
    app[ACCOUNTS] = accounts = Accounts(app[STORE])
    app[THROTTLE] = LoginThrottle(
        pool, ThrottlePolicy.of(config.login_max_failures, config.login_lockout_seconds)
    )
    app[REFRESH_TOKENS] = RefreshTokens(
        pool, ttl=config.refresh_token_ttl_seconds, max_age=config.session_max_age_seconds
    )
    await app[KEYS].load(pool, config.jwt_private_key)
    if config.admin_password:
        try:
            await ensure_admin(accounts, config.admin_email, config.admin_password)
        except AdminEmailTaken as exc:
            log.error("no admin account: %s", exc)
    yield


async def sweep(app: web.Application) -> None:
    """Delete what expired once (login attempts past the window, logins that ended)."""
    keep_revoked = app[CONFIG].jwt_ttl_seconds + REVOCATION_MARGIN
    attempts = await app[THROTTLE].sweep()
    logins = await app[REFRESH_TOKENS].sweep(keep_revoked)
    if attempts or logins:
        log.debug("swept %d login attempts and %d ended logins", attempts, logins)


async def sweep_forever(app: web.Application, every: float = SWEEP_SECONDS) -> None:
    while True:
        try:
            await sweep(app)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("sweeping login attempts and logins failed: %s", exc)
        await asyncio.sleep(every)


def create_app(config: Config) -> web.Application:
    keys = KeyStore()
    app = make_app(
        config,
        "auth",
        routes=[*routes, *privacy_routes],
        contexts=[accounts_context, background("auth-sweeper", sweep_forever)],
        token_keys=keys,
    )
    app[KEYS] = keys
    return app

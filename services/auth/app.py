"""auth-service: accounts, login with throttling, RS256 tokens and the JWKS (port 8001)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from microshop.app import CONFIG, STORE, make_app
from microshop.config import Config

from . import events as _events  # noqa: F401  (registers UserRegistered)
from .accounts import Accounts
from .appkeys import ACCOUNTS, KEYS
from .keys import KeyStore
from .privacy import privacy_routes
from .seed import ensure_admin
from .views import routes

log = logging.getLogger(__name__)


async def accounts_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[ACCOUNTS] = accounts = Accounts(app[STORE])
    await app[KEYS].load(app[STORE].pool, config.jwt_private_key)
    if config.admin_password:
        await ensure_admin(accounts, config.admin_email, config.admin_password)
    yield


def create_app(config: Config) -> web.Application:
    keys = KeyStore()
    app = make_app(
        config,
        "auth",
        routes=[*routes, *privacy_routes],
        contexts=[accounts_context],
        token_keys=keys,
    )
    app[KEYS] = keys
    return app

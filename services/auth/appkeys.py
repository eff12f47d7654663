"""auth-service's own app state."""

from aiohttp import web

from .accounts import Accounts
from .keys import KeyStore

ACCOUNTS = web.AppKey("accounts", Accounts)
KEYS = web.AppKey("keys", KeyStore)

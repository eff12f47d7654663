"""auth-service's own app state."""

from aiohttp import web

from .accounts import Accounts
from .keys import KeyStore
from .throttle import LoginThrottle
from .tokens import RefreshTokens

ACCOUNTS = web.AppKey("accounts", Accounts)
KEYS = web.AppKey("keys", KeyStore)
REFRESH_TOKENS = web.AppKey("refresh_tokens", RefreshTokens)
THROTTLE = web.AppKey("login_throttle", LoginThrottle)

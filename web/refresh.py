"""Refreshing a page session on the server, one refresh per refresh token at a time.

The pages keep the refresh token in a cookie of its own. When the access cookie has expired
(the browser dropped it) or no longer verifies, the gateway trades the refresh token at
auth-service (`POST /api/auth/refresh`) for a new pair and sets both cookies on its answer.
A refresh token works once, and presenting it twice revokes the login, so the requests of
one browser that arrive together with the same cookie must not each refresh: the first one
does, the others wait for its answer; and for `REMEMBER_SECONDS` after it (until the
browser has stored the new cookies) a request with the old cookie gets the same new pair
instead of revoking the login. That is the only time a retired token is honoured: by this
gateway process, with nothing but what its own refresh obtained.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from aiohttp import web

__all__ = ["REFRESHES", "REMEMBER_SECONDS", "Pair", "Refreshes"]

REMEMBER_SECONDS = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Pair:
    """What login and refresh answer: the tokens and how long each lives (seconds)."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    @classmethod
    def of(cls, body: Any) -> Pair | None:
        """The pair in an answer of auth-service, or None when it holds none."""
        if not isinstance(body, dict):
            return None
        access, refresh = body.get("access_token"), body.get("refresh_token")
        expires, refresh_expires = body.get("expires_in"), body.get("refresh_expires_in")
        if not (_token(access) and _token(refresh)):
            return None
        if not (_seconds(expires) and _seconds(refresh_expires)):
            return None
        return cls(access, refresh, expires, refresh_expires)


def _token(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _seconds(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Refreshes:
    """Refreshes in flight and just done, by the digest of the refresh token traded."""

    def __init__(self, remember: float = REMEMBER_SECONDS) -> None:
        self.remember = remember
        self._running: dict[bytes, asyncio.Task[Pair | None]] = {}
        self._done: dict[bytes, tuple[float, Pair]] = {}

    async def refresh(
        self, token: str, trade: Callable[[str], Awaitable[Pair | None]]
    ) -> Pair | None:
        """The new pair for `token`: from `trade(token)`, run once however many requests
        ask at the same time, or remembered from a trade that just finished. None when
        the token was refused; `trade`'s exceptions reach every caller."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        for old in [k for k, (at, _) in self._done.items() if now - at > self.remember]:
            del self._done[old]
        if key in self._done:
            return self._done[key][1]
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(trade(token))
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: bytes, task: asyncio.Task[Pair | None]) -> None:
        del self._running[key]
        if not task.cancelled() and task.exception() is None:
            pair = task.result()
            if pair is not None:
                self._done[key] = (time.monotonic(), pair)


REFRESHES = web.AppKey("page_refreshes", Refreshes)

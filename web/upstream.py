"""Calling the services' public HTTP API for a page, the way the gateway's proxy does.

Pages get their data like any client: through the API of DESIGN §5, on the gateway's
shared HTTP client, with the request and correlation ids, `traceparent` and the caller's
address the proxy forwards too. An upstream that is down, failing or slow becomes a
`PageError` (502/503/504), never a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from microshop.appkeys import CONFIG, HTTP
from services.gateway.proxy import identity_headers

from .errors import PageError

__all__ = ["Answer", "call"]

_SERVICE_NAMES = {"product": "The catalog", "order": "The order service",
                  "auth": "The sign-in service", "log": "The log-service"}  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What a service answered: the status and the JSON body (None when there was none)."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return str(message) if message else f"HTTP {self.status}"

    def error_details(self) -> dict[str, Any]:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        return details if isinstance(details, dict) else {}


def _unavailable(service: str, status: int, why: str) -> PageError:
    name = _SERVICE_NAMES.get(service, service)
    return PageError(status, f"{name} is unavailable", f"{why} Please try again in a moment.")


async def call(
    request: web.Request,
    service: str,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    token: str | None = None,
) -> Answer:
    """`method path` at `service`; a 5xx, a refused connection or a timeout is a PageError."""
    config = request.app[CONFIG]
    headers = identity_headers(request)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = config.url_of(service) + path
    try:
        async with request.app[HTTP].request(
            method, url, params=params, json=json, headers=headers, allow_redirects=False
        ) as resp:
            raw = await resp.read()
            try:
                body = await resp.json(content_type=None) if raw.strip() else None
            except ValueError:
                body = None
            answer = Answer(resp.status, body, dict(resp.headers))
    except TimeoutError:
        raise _unavailable(service, 504, "It did not answer in time.") from None
    except aiohttp.ClientConnectorError:
        raise _unavailable(service, 502, "It cannot be reached.") from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise _unavailable(service, 502, f"It failed ({type(exc).__name__}).") from None
    if answer.status >= 500:
        status = 503 if answer.status == 503 else 502
        raise _unavailable(service, status, f"It answered {answer.error_message()}.")
    return answer

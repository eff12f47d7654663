"""Calling the services' public HTTP API for a page, the way the gateway's proxy does.

Pages get their data like any client: through the public API, on the gateway's shared
HTTP client, with the request and correlation ids, `traceparent` and the caller's address
the proxy forwards too (the internal key only where the endpoint reads that address). An
upstream that is down, failing or slow becomes a `PageError` (502/503/504), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from microshop.client import (
    Reply,
    ServiceClient,
    ServiceFailed,
    ServiceTimeout,
    ServiceUnreachable,
    identity_headers,
)

from .errors import PageError

__all__ = ["Reply", "call"]

_SERVICE_NAMES = {
    "product": "The catalog",
    "order": "The order service",
    "auth": "The sign-in service",
    "log": "The log-service",
}


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
    vouch: bool = False,
) -> Reply:
    """`method path` at `service`; a 5xx, a refused connection or a timeout is a PageError.
    `vouch`: the endpoint reads the caller's address (login): send the internal key that
    vouches for it, as the gateway's route table says for the same endpoint."""
    headers = identity_headers(request, vouch=vouch)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    client = ServiceClient.of(request.app, service)
    try:
        return await client.request(method, path, params=params, json=json, headers=headers)
    except ServiceTimeout:
        raise _unavailable(service, 504, "It did not answer in time.") from None
    except ServiceUnreachable:
        raise _unavailable(service, 502, "It cannot be reached.") from None
    except ServiceFailed as exc:
        if exc.upstream_status is None:
            raise _unavailable(service, 502, f"It failed ({exc.message}).") from None
        status = 503 if exc.upstream_status == 503 else 502
        raise _unavailable(service, status, f"It answered HTTP {exc.upstream_status}.") from None

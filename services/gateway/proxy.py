"""Forwarding a public request to the service behind it.

The gateway checks the token at the edge (the service checks again) and forwards the
path it authorised: the route's pattern filled in with the matched parameters, each
percent-encoded as one segment, sent without re-normalisation. A parameter that would
change the path's shape once decoded (`.`, `..`, a slash, a backslash, a control
character, an undecodable `%`) is a 404 here, never resolved into another route. It
forwards the end-to-end headers plus request id, correlation id and `traceparent` (a
client's `X-Causation-ID` never: causation is the system's to record), tells the
service the caller's address (vouched for with the internal key only on the routes that
read it), and turns an upstream that is down, failing or slow into a 502/503/504.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict, MultiMapping

from microshop.auth import authenticate, require_admin
from microshop.client import (
    ServiceClient,
    ServiceTimeout,
    ServiceUnreachable,
    UpstreamError,
    identity_headers,
)
from microshop.errors import BadGateway, GatewayTimeout, NotFound

from .routing import Access, Route

__all__ = ["forward", "handler_for", "upstream_path"]

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the proxy sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
    )
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-internal-api-key",
    "x-causation-id",
    "x-request-id",
    "forwarded",
}
_NOT_RETURNED = _HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "date",
    "server",
    "x-request-id",
    "x-correlation-id",
}


def _connection_listed(headers: MultiMapping[str]) -> set[str]:
    """Header names a `Connection` header marks as hop-by-hop."""
    values = headers.getall("Connection", [])
    return {name.strip().lower() for value in values for name in value.split(",")}


async def _check_access(request: web.Request, access: Access) -> None:
    if access == "user":
        await authenticate(request)
    elif access == "admin":
        await require_admin(request)


# Characters a path segment may carry unencoded (RFC 3986 pchar, less the sub-delims
# some servers treat specially); everything else is percent-encoded.
_SEGMENT_SAFE = "-._~:@!$*+,"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _segment(name: str, value: str) -> str:
    """`value` (decoded, as matched) as one encoded path segment; a 404 for a value that
    would not stay one segment of this route once decoded upstream."""
    if (
        value in ("", ".", "..")
        or "/" in value
        or "\\" in value
        or "%" in value  # left encoded by the router: not valid UTF-8
        or _CONTROL.search(value)
    ):
        raise NotFound("no such resource", details={name: ["not a valid path segment"]})
    return urllib.parse.quote(value, safe=_SEGMENT_SAFE)


def upstream_path(route: Route, request: web.Request) -> str:
    """The path and query to forward: `route`'s pattern with the matched parameters."""
    params = {name: _segment(name, value) for name, value in request.match_info.items()}
    path = route.path.format_map(params)
    query = request.rel_url.raw_query_string
    return f"{path}?{query}" if query else path


async def forward(request: web.Request, route: Route) -> web.Response:
    service = route.service
    path = upstream_path(route, request)
    listed = _connection_listed(request.headers)
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in _NOT_FORWARDED and k.lower() not in listed
    )
    headers.update(identity_headers(request, vouch=route.client_address))
    body = await request.read() if request.can_read_body else None
    client = ServiceClient.of(request.app, service)
    details = {"service": service}
    try:
        async with client.send(
            request.method, path, headers=headers, data=body, encoded=True
        ) as upstream:
            payload = await upstream.read()
            returned = _connection_listed(upstream.headers)
            response_headers = CIMultiDict(
                (k, v)
                for k, v in upstream.headers.items()
                if k.lower() not in _NOT_RETURNED and k.lower() not in returned
            )
            return web.Response(status=upstream.status, body=payload, headers=response_headers)
    except ServiceTimeout:
        raise GatewayTimeout(f"{service} did not answer in time", details=details) from None
    except ServiceUnreachable:
        raise BadGateway(
            f"{service} is not reachable", code="upstream_unavailable", details=details
        ) from None
    except UpstreamError as exc:
        log.warning("%s %s via %s: %s", request.method, request.path, service, exc.message)
        raise BadGateway(f"{service} failed", details=details) from None


def handler_for(route: Route, method: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    access = route.methods[method]

    async def handle(request: web.Request) -> web.Response:
        await _check_access(request, access)
        return await forward(request, route)

    handle.__name__ = f"{method.lower()}_{route.service}"
    return handle

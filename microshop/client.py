"""Calls from one service to another: one client, one error taxonomy, checked answers.

Every caller (the gateway's proxy, the pages, the cart asking the catalog, order asking
for the cart, order-consumer and payment-service reporting outcomes) goes through
`ServiceClient`. It runs on the app's shared HTTP session, whose trace hooks add the
request's correlation id and `traceparent` to every call, and turns trouble into one of
three errors, by what the caller can do about it:

- `ServiceUnreachable`: no connection (refused, reset before an answer, DNS) — try another
  time (503);
- `ServiceTimeout`: no answer in time (504);
- `ServiceFailed`: an answer, but a 5xx or a body that is not what was asked for (502).

Any other answer (2xx and 4xx) comes back as a `Reply` for the caller to read: a 404
means "no such product" to one caller and a bug to another. The kernel's error middleware
answers these errors as `{service}_service_unavailable|timeout|error`.

A service may run as several replicas (`<SERVICE>_URL` lists their base URLs). The client
sends each call to the replica with the fewest calls in flight (round robin among equals),
sets aside for a while one that refuses connections (`Upstream`: 1 s, doubling up to 30 s
while it keeps refusing; when all are set aside, it tries them anyway), and sends a call
that never reached a replica to the next one. A call that may have reached it is tried
again elsewhere only when repeating it is harmless: GET, HEAD and OPTIONS, or a request
carrying an `Idempotency-Key`. Under Kubernetes there is one URL per service (its Service
balances); the same code then simply has one replica to choose from.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import aiohttp
import marshmallow
import msgspec
import yarl
from aiohttp import web
from multidict import CIMultiDict

from . import context
from .appkeys import CONFIG, HTTP

__all__ = [
    "UPSTREAMS",
    "Reply",
    "ServiceClient",
    "ServiceFailed",
    "ServiceTimeout",
    "ServiceUnreachable",
    "Upstream",
    "UpstreamError",
    "identity_headers",
]

log = logging.getLogger(__name__)

_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """Another service could not give an answer to use."""

    kind: ClassVar[str] = "failed"
    status: ClassVar[int] = 502

    def __init__(self, service: str, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.message = message
        self.upstream_status = upstream_status

    @property
    def code(self) -> str:
        suffix = {"unavailable": "unavailable", "timeout": "timeout"}.get(self.kind, "error")
        return f"{self.service}_service_{suffix}"


class ServiceUnreachable(UpstreamError):
    kind, status = "unavailable", 503


class ServiceTimeout(UpstreamError):
    kind, status = "timeout", 504


class ServiceFailed(UpstreamError):
    kind, status = "failed", 502


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    """An answer: its status, its JSON body (None when empty or not JSON), its headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, Any]:
        """The `error` object of an error answer (`{"error": {code, message, details}}`)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def error_code(self) -> str | None:
        code = self.error.get("code")
        return code if isinstance(code, str) else None

    @property
    def error_message(self) -> str:
        message = self.error.get("message")
        return str(message) if message else f"HTTP {self.status}"

    @property
    def error_details(self) -> dict[str, Any]:
        details = self.error.get("details")
        return details if isinstance(details, dict) else {}


class Upstream:
    """The replicas of one service as a caller sees them: calls in flight to each, and
    which are set aside (ejected) after refusing connections, until when."""

    def __init__(
        self, service: str, urls: Sequence[str], *, eject_base: float = 1.0, eject_max: float = 30.0
    ) -> None:
        if not urls:
            raise ValueError(f"{service}: no URL")
        self.service = service
        self.urls = tuple(u.rstrip("/") for u in urls)
        self.eject_base = eject_base
        self.eject_max = eject_max
        self.in_flight = [0] * len(self.urls)
        self.refusals = [0] * len(self.urls)  # in a row
        self.ejected_until = [0.0] * len(self.urls)
        self.ejections = 0
        self.retries = 0
        self._turn = itertools.count()

    def pick(self, tried: set[int]) -> int | None:
        """The replica for the next call: of those not `tried`, not set aside, the one with
        fewest calls in flight (taking turns among equals); when every untried one is set
        aside, the one whose time out ends first; None when all were tried."""
        now = time.monotonic()
        untried = [i for i in range(len(self.urls)) if i not in tried]
        if not untried:
            return None
        healthy = [i for i in untried if self.ejected_until[i] <= now]
        if not healthy:
            return min(untried, key=lambda i: self.ejected_until[i])
        start = next(self._turn) % len(self.urls)
        return min(healthy, key=lambda i: (self.in_flight[i], (i - start) % len(self.urls)))

    def refused(self, i: int) -> None:
        """Replica `i` refused a connection: set it aside, longer each time in a row."""
        self.refusals[i] += 1
        pause = min(self.eject_base * 2 ** (self.refusals[i] - 1), self.eject_max)
        self.ejected_until[i] = time.monotonic() + pause
        self.ejections += 1
        log.warning(
            "%s-service at %s refuses connections: set aside for %.0f s",
            self.service,
            self.urls[i],
            pause,
        )

    def answered(self, i: int) -> None:
        if self.refusals[i]:
            self.refusals[i] = 0
            self.ejected_until[i] = 0.0


UPSTREAMS = web.AppKey("upstreams", dict[str, Upstream])
"""The replicas of each service this app calls (made in `make_app`, filled on first use)."""


def identity_headers(request: web.Request, *, vouch: bool = False) -> dict[str, str]:
    """What a call made on behalf of `request` carries besides the trace context: request
    and correlation ids, `traceparent` and the caller's address. With `vouch`, also the
    internal API key, which vouches for that address: a service trusts `X-Forwarded-For`
    from its peers only (`microshop.auth.client_address`). Only calls to an endpoint that
    reads the address vouch; no other public call carries the key."""
    request_id = context.request_id.get() or context.new_id()
    headers = {
        "X-Request-ID": request_id,
        "X-Correlation-ID": context.correlation_id.get() or request_id,
        # the caller's trace when well-formed, else a new one (the context middleware's)
        "traceparent": context.traceparent.get() or context.new_traceparent(),
        "X-Forwarded-For": request.remote or "unknown",
        "X-Forwarded-Proto": request.scheme,
    }
    internal_key = request.app[CONFIG].internal_api_key
    if vouch and internal_key:
        headers["X-Internal-Api-Key"] = internal_key
    return headers


class ServiceClient:
    """Calls `service` at `upstream` (its replicas, or one base URL) on `session`; with
    `internal_key`, as a peer (the `/internal` API). `timeout` (seconds) caps every call
    below the session's own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        service: str,
        upstream: Upstream | str,
        *,
        internal_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.session = session
        self.service = service
        self.upstream = (
            upstream if isinstance(upstream, Upstream) else Upstream(service, [upstream])
        )
        self._headers = {"X-Internal-Api-Key": internal_key} if internal_key else {}
        self._timeout = None if timeout is None else aiohttp.ClientTimeout(total=timeout)

    @property
    def base_url(self) -> str:
        return self.upstream.urls[0]

    @classmethod
    def of(
        cls,
        app: web.Application,
        service: str,
        *,
        internal: bool = False,
        timeout: float | None = None,
    ) -> ServiceClient:
        """The client of `service` for `app`: its configured replicas, the app's session."""
        config = app[CONFIG]
        upstreams = app[UPSTREAMS]
        upstream = upstreams.get(service)
        if upstream is None:
            upstream = upstreams[service] = Upstream(service, config.urls_of(service))
        key = config.internal_api_key if internal else None
        return cls(app[HTTP], service, upstream, internal_key=key, timeout=timeout)

    @contextlib.asynccontextmanager
    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        encoded: bool = False,
        **options: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The raw response to `method path` (a path and query, not a URL), for a caller that
        passes it on as it is (the gateway). `encoded`: `path` is percent-encoded already
        and goes out exactly so (not re-quoted, no dot segments resolved). Transport
        trouble raises an `UpstreamError`, after trying the other replicas where that is
        safe (see the module's docstring)."""
        merged = CIMultiDict(headers or {})  # repeated headers stay repeated
        merged.update(self._headers)
        for name, value in context.propagation_headers().items():
            merged.setdefault(name, value)  # the work's correlation id and trace context
        if self._timeout is not None:
            options.setdefault("timeout", self._timeout)
        upstream = self.upstream
        repeatable = method.upper() in _REPEATABLE or "Idempotency-Key" in merged
        tried: set[int] = set()
        while (i := upstream.pick(tried)) is not None:
            tried.add(i)
            answered = False
            upstream.in_flight[i] += 1
            try:
                url = yarl.URL(upstream.urls[i] + path, encoded=encoded)
                async with self.session.request(
                    method,
                    url,
                    headers=merged,
                    allow_redirects=False,
                    **options,
                ) as response:
                    answered = True
                    upstream.answered(i)
                    yield response
                    return
            except TimeoutError:
                raise ServiceTimeout(
                    self.service, f"{self.service}-service did not answer in time"
                ) from None
            except aiohttp.ClientConnectorError as exc:
                upstream.refused(i)
                if not answered and len(tried) < len(upstream.urls):
                    upstream.retries += 1
                    continue  # it never got the request: any other replica may take it
                raise ServiceUnreachable(
                    self.service, f"{self.service}-service is not reachable: {exc.os_error}"
                ) from None
            except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
                if not answered and repeatable and len(tried) < len(upstream.urls):
                    upstream.retries += 1
                    continue  # lost on the way, maybe after it arrived: harmless to repeat
                raise ServiceFailed(
                    self.service, f"{self.service}-service failed: {type(exc).__name__}"
                ) from None
            finally:
                upstream.in_flight[i] -= 1
        raise AssertionError("unreachable: an upstream has at least one URL")

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """The answer to `method path`: a 2xx or 4xx `Reply`; a 5xx is `ServiceFailed`."""
        async with self.send(method, path, json=json, params=params, headers=headers) as resp:
            raw = await resp.read()
            reply = Reply(resp.status, _json_of(raw), dict(resp.headers))
        if reply.status >= 500:
            raise ServiceFailed(
                self.service,
                f"{self.service}-service answered {reply.status}: {reply.error_message}",
                upstream_status=reply.status,
            )
        return reply

    async def get(self, path: str, **options: Any) -> Reply:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Reply:
        return await self.request("POST", path, **options)

    def load(self, reply: Reply, schema: marshmallow.Schema) -> Any:
        """`reply`'s body loaded by `schema`; a body that does not fit is `ServiceFailed`
        (the other service broke its contract, not the caller)."""
        try:
            return schema.load(reply.body)
        except (marshmallow.ValidationError, TypeError) as exc:
            detail = exc.messages if isinstance(exc, marshmallow.ValidationError) else exc
            raise ServiceFailed(
                self.service, f"{self.service}-service sent an answer that does not fit: {detail}"
            ) from None


def _json_of(raw: bytes) -> Any:
    """The JSON of a body; None for an empty one or one that is not JSON."""
    if not raw.strip():
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None

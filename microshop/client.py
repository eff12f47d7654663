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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
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
    "Reply",
    "ServiceClient",
    "ServiceFailed",
    "ServiceTimeout",
    "ServiceUnreachable",
    "UpstreamError",
    "identity_headers",
]


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
    """Calls `service` at `base_url` on `session`; with `internal_key`, as a peer (the
    `/internal` API). `timeout` (seconds) caps every call below the session's own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        service: str,
        base_url: str,
        *,
        internal_key: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.session = session
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._headers = {"X-Internal-Api-Key": internal_key} if internal_key else {}
        self._timeout = None if timeout is None else aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def of(
        cls,
        app: web.Application,
        service: str,
        *,
        internal: bool = False,
        timeout: float | None = None,
    ) -> ServiceClient:
        """The client of `service` for `app`: its configured URL, the app's session."""
        config = app[CONFIG]
        key = config.internal_api_key if internal else None
        return cls(app[HTTP], service, config.url_of(service), internal_key=key, timeout=timeout)

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
        trouble raises an `UpstreamError`."""
        merged = CIMultiDict(headers or {})  # repeated headers stay repeated
        merged.update(self._headers)
        if self._timeout is not None:
            options.setdefault("timeout", self._timeout)
        url = yarl.URL(self.base_url + path, encoded=encoded)
        try:
            async with self.session.request(
                method, url, headers=merged, allow_redirects=False, **options
            ) as response:
                yield response
        except TimeoutError:
            raise ServiceTimeout(
                self.service, f"{self.service}-service did not answer in time"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ServiceUnreachable(
                self.service, f"{self.service}-service is not reachable: {exc.os_error}"
            ) from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise ServiceFailed(
                self.service, f"{self.service}-service failed: {type(exc).__name__}"
            ) from None

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

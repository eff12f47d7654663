"""Rendering pages: the Jinja environment, template filters, and how a page fails.

A page handler returns HTML for every outcome. It raises `PageError` (an error page with a
status) or `Redirect` (303 or 302); `page()` turns both, and any unexpected failure, into a
response, so the kernel's JSON error middleware never answers a browser.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

from microshop import context
from microshop.http import storable

from . import session
from .errors import PageError, Redirect

__all__ = [
    "PageError",
    "Redirect",
    "create_environment",
    "page",
    "pages_count",
    "render",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    # no scripts at all, no framing (clickjacking of the admin forms), forms post here only
    "Content-Security-Policy": "default-src 'self'; img-src 'self' http: https: data:; "
    "script-src 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_STORE_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_TIMED_OUT = PageError(504, "Timed out", "A service behind this page did not answer in time.")
_FAILED = PageError(500, "Something went wrong", "The error has been logged.")
_UNSTORABLE = PageError(400, "Bad request", "The address holds a NUL or an invalid character.")


def page(handler: Handler) -> Handler:
    """Wrap a page handler so that every outcome is an HTML response, carrying the cookies
    the request decided on (`session.finish`)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        response = await _outcome(handler, request)
        session.finish(request, response)
        return response

    return wrapped


async def _outcome(handler: Handler, request: web.Request) -> web.StreamResponse:
    try:
        if not storable(request.path) or not all(map(storable, request.query.values())):
            raise _UNSTORABLE
        return await handler(request)
    except Redirect as redirect:
        return web.Response(status=redirect.status, headers={"Location": redirect.location})
    except PageError as failed:
        return await error_page(request, failed)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return await error_page(request, _TIMED_OUT)
    except _STORE_DOWN as exc:
        log.warning("page %s: event store unavailable: %s", request.path, exc)
        down = PageError(
            503,
            "Event store unavailable",
            f"The database cannot be reached ({type(exc).__name__}).",
        )
        return await error_page(request, down)
    except Exception:
        log.exception("page %s %s failed", request.method, request.path)
        return await error_page(request, _FAILED)


async def error_page(request: web.Request, error: PageError) -> web.Response:
    try:
        return await render(
            request, "error.html", {"error": error}, status=error.status, title=error.title
        )
    except Exception:  # the error page itself failed: say so plainly
        log.exception("rendering the error page failed")
        return web.Response(text=f"{error.status} {error.title}\n", status=error.status)


async def render(
    request: web.Request,
    template: str,
    values: Mapping[str, Any],
    *,
    status: int = 200,
    title: str = "",
) -> web.Response:
    """`template` with `values` plus what the layout needs (who is logged in, the CSRF
    token; the page wrapper then sets the CSRF cookie when this browser had none)."""
    user = await session.current_user(request)
    token = session.csrf_token(request)
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            "user": user,
            "csrf_token": token,
            "path": request.path,
            "path_qs": request.path_qs,
            "title": title,
            "request_id": context.request_id.get(),
            **values,
        },
        status=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def pages_count(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


# -- filters -----------------------------------------------------------------------------


def when(value: Any) -> str:
    """A timestamp (datetime or ISO 8601 text) as `2024-05-01 12:30:05 UTC`."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%d %H:%M:%S}" + (" UTC" if value.tzinfo else "")


def money(amount: Any, currency: Any = "") -> str:
    return f"{amount} {currency}".strip() if amount is not None else ""


def safe_url(value: Any) -> str | None:
    """`value` when it is a relative path or an http(s) URL, else None (for `src`/`href`)."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("/") and not value.startswith("//"):
        return value
    parts = urlsplit(value)
    return str(value) if parts.scheme in ("http", "https") and parts.netloc else None


def seconds(value: Any) -> str:
    """A duration in seconds, readably: `0.4 s`, `12 s`, `3 min 5 s`, `2 h 1 min`."""
    if value is None:
        return ""
    total = float(value)
    if total < 10:
        return f"{total:.1f} s"
    whole = round(total)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def create_environment(app: web.Application) -> jinja2.Environment:
    """The app's Jinja environment: templates of this package, autoescaped."""
    filters: dict[str, Callable[..., str]] = {"when": when, "money": money, "seconds": seconds}
    filters["safe_url"] = safe_url  # type: ignore[assignment]  # None renders as ""
    return aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters=filters,
    )

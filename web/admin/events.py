"""Operator pages of the event log: the global log, one stream, one event with its
correlation chain."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote, urlencode

from aiohttp import web

from microshop import context

from .. import session
from ..errors import PageError, Redirect
from ..render import page, render
from . import queries
from .resources import OPERATOR

__all__ = ["routes"]

routes = web.RouteTableDef()

PER_PAGE = 50
_CATEGORY = re.compile(r"^[^-\s]{1,100}$")
_STREAM = re.compile(r"^\S{1,300}$")


def _positive(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise PageError(400, f"Bad {name}", f"{name} must be a positive whole number.")
    return value


@routes.get("/admin", name="admin")
@page
async def admin_home(request: web.Request) -> web.Response:
    await session.require_admin(request)
    raise Redirect("/admin/events", status=302)


@routes.get("/admin/events", name="admin_events")
@page
async def log_page(request: web.Request) -> web.Response:
    """The global log, newest first; `?category=` filters, `?before=` pages back,
    `?correlation_id=` shows one correlation's chain instead."""
    await session.require_admin(request)
    pool = request.app[OPERATOR].pool
    correlation_id = request.query.get("correlation_id", "").strip()
    if correlation_id:
        if context.valid_id(correlation_id) is None:
            raise PageError(400, "Bad correlation id", "Letters, digits and . _ : - only.")
        links = queries.chain(await queries.correlated(pool, correlation_id))
        return await render(
            request,
            "admin/chain.html",
            {
                "correlation_id": correlation_id,
                "links": links,
                "limit": queries.CHAIN_LIMIT,
            },
            title=f"Correlation {correlation_id}",
        )
    category = request.query.get("category", "").strip() or None
    if category is not None and not _CATEGORY.match(category):
        raise PageError(400, "Bad category", "A category is the part of a stream id before '-'.")
    before = _positive(request.query.get("before"), "before")
    events = await queries.recent(pool, category=category, before=before, limit=PER_PAGE)
    older = None
    if len(events) == PER_PAGE:
        query = {"category": category} if category else {}
        older = "/admin/events?" + urlencode({**query, "before": events[-1].global_position})
    return await render(
        request,
        "admin/events.html",
        {
            "events": events,
            "category": category or "",
            "before": before,
            "older_url": older,
            "categories": await queries.categories(pool),
            "streams": await queries.recent_streams(pool, category=category),
        },
        title="Event log",
    )


@routes.get("/admin/events/stream", name="admin_stream_lookup")
@page
async def stream_lookup(request: web.Request) -> web.Response:
    """The "open stream" form: `?id=` → the stream's page."""
    await session.require_admin(request)
    stream_id = request.query.get("id", "").strip()
    if not _STREAM.match(stream_id):
        raise Redirect("/admin/events", status=302)
    raise Redirect("/admin/events/stream/" + quote(stream_id, safe=""), status=302)


@routes.get("/admin/events/stream/{stream_id}", name="admin_stream")
@page
async def stream_page(request: web.Request) -> web.Response:
    await session.require_admin(request)
    stream_id = request.match_info["stream_id"]
    after = _positive(request.query.get("after"), "after") or 0
    events = await queries.in_stream(request.app[OPERATOR].pool, stream_id, after_version=after)
    if not events and not after:
        raise PageError(404, "No such stream", f"Stream {stream_id!r} has no events.")
    more = None
    if len(events) == queries.STREAM_PAGE:
        more = f"/admin/events/stream/{quote(stream_id, safe='')}?after={events[-1].stream_version}"
    category, _, rest = stream_id.partition("-")
    return await render(
        request,
        "admin/stream.html",
        {
            "stream_id": stream_id,
            "events": events,
            "more_url": more,
            "order_id": rest if category == "order" else None,
            "payment_stream": f"payment-{rest}" if category == "order" else None,
        },
        title=stream_id,
    )


@routes.get("/admin/events/{event_id}", name="admin_event")
@page
async def event_page(request: web.Request) -> web.Response:
    """One event: data and metadata as stored, and every event of its correlation."""
    await session.require_admin(request)
    try:
        event_id = uuid.UUID(request.match_info["event_id"])
    except ValueError:
        raise PageError(404, "No such event", "This is not an event id.") from None
    pool = request.app[OPERATOR].pool
    event = await queries.by_id(pool, event_id)
    if event is None:
        raise PageError(404, "No such event", f"No event has the id {event_id}.")
    links = []
    if event.correlation_id:
        links = queries.chain(await queries.correlated(pool, event.correlation_id))
    cause_id = _uuid_or_none(event.causation_id)
    cause = await queries.by_id(pool, cause_id) if cause_id is not None else None
    return await render(
        request,
        "admin/event.html",
        {
            "event": event,
            "links": links,
            "cause": cause,
            "limit": queries.CHAIN_LIMIT,
        },
        title=f"{event.event_type} {event.stream_id}@{event.stream_version}",
    )


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None  # a causation id that is no event id (e.g. a request id)

"""Operator page of the parking queues: what every consumer parked, replaying it (a whole
queue or one event) and discarding one event."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlencode

import aiormq
from aiohttp import web

from eventstore import Consumer
from eventstore.consumer import NotParked, ParkedMessage, QueueNotDeclared
from microshop.topology import CONSUMER_QUEUES

from .. import session
from ..errors import PageError, Redirect
from ..render import page, render
from .resources import OPERATOR

__all__ = ["routes"]

routes = web.RouteTableDef()

SHOWN = 50
BROKER_TIMEOUT = 10.0
_BROKER_DOWN = (OSError, ConnectionError, TimeoutError, aiormq.exceptions.AMQPError)


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """One consumer's parking queue as the page shows it."""

    name: str
    service: str
    queue: str
    parking: str
    bindings: tuple[str, ...]
    count: int | None = None  # None: not declared yet (the consumer never ran)
    messages: tuple[ParkedMessage, ...] = ()
    error: str | None = None


def excerpt(body: bytes, limit: int = 300) -> str:
    text = body.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _queue(name: str, consumer: Consumer) -> Queue:
    spec = CONSUMER_QUEUES[name]
    queue = Queue(name, spec.service, consumer.queue, consumer.parking, spec.bindings)
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            count = await consumer.parked_count()
            messages = await consumer.parked(limit=SHOWN) if count else []
    except _BROKER_DOWN as exc:
        return dataclasses.replace(queue, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    return dataclasses.replace(queue, count=count, messages=tuple(messages))


@routes.get("/admin/dead-letters", name="admin_dead_letters")
@page
async def dead_letters_page(request: web.Request) -> web.Response:
    await session.require_admin(request)
    consumers = request.app[OPERATOR].consumers
    queues = [await _queue(name, consumer) for name, consumer in consumers.items()]
    replayed = request.query.get("replayed")
    return await render(
        request,
        "admin/dead_letters.html",
        {
            "queues": queues,
            "shown": SHOWN,
            "excerpt": excerpt,
            "replayed": int(replayed) if replayed and replayed.isdigit() else None,
            "replayed_queue": request.query.get("queue", ""),
            "discarded": request.query.get("discarded"),
        },
        status=503 if any(q.error for q in queues) else 200,
        title="Dead letters",
    )


def _consumer(request: web.Request) -> tuple[str, Consumer]:
    name = request.match_info["name"]
    consumer = request.app[OPERATOR].consumers.get(name)
    if consumer is None:
        raise PageError(404, "No such queue", f"No consumer is called {name!r}.")
    return name, consumer


def _not_parked(name: str, event_id: str) -> PageError:
    return PageError(
        404, "Not parked", f"{name}'s parking queue holds no message of event {event_id}."
    )


def _broker_down(doing: str, exc: BaseException) -> PageError:
    return PageError(
        503, "RabbitMQ is unavailable", f"{doing} stopped: {type(exc).__name__}: {exc}"
    )


@routes.post("/admin/dead-letters/{name}/replay", name="admin_replay")
@page
async def replay(request: web.Request) -> web.Response:
    """Move the parked messages of a queue back to it, with a fresh attempt budget: all of
    them, or only those of the form's `event_id` (the others stay parked)."""
    await session.require_admin(request)
    form = await session.check_csrf(request)
    name, consumer = _consumer(request)
    event_id = form.get("event_id") or None
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            if await consumer.parked_count() is None:
                if event_id is not None:
                    raise _not_parked(name, event_id)
                moved = 0
            else:
                moved = await consumer.replay_parked(event_id=event_id)
    except NotParked:
        raise _not_parked(name, event_id or "?") from None
    except QueueNotDeclared as exc:
        raise PageError(409, "No queue to replay to", f"{exc}; its messages stay parked.") from None
    except _BROKER_DOWN as exc:
        raise _broker_down("Replaying", exc) from None
    raise Redirect(f"/admin/dead-letters?replayed={moved}&queue={name}#{name}")


@routes.post("/admin/dead-letters/{name}/discard", name="admin_discard")
@page
async def discard(request: web.Request) -> web.Response:
    """Remove the parked messages of the form's `event_id` for good (the others stay)."""
    await session.require_admin(request)
    form = await session.check_csrf(request)
    name, consumer = _consumer(request)
    event_id = form.get("event_id") or ""
    if not event_id:
        raise PageError(400, "Which message?", "The form names no event id to discard.")
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            await consumer.discard_parked(event_id)
    except NotParked:
        raise _not_parked(name, event_id) from None
    except _BROKER_DOWN as exc:
        raise _broker_down("Discarding", exc) from None
    raise Redirect(
        f"/admin/dead-letters?{urlencode({'discarded': event_id, 'queue': name})}#{name}"
    )

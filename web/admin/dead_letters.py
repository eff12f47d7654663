"""Operator page of the parking queues: what every consumer parked, and replaying it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import aiormq
from aiohttp import web

from eventstore import Consumer
from eventstore.consumer import ParkedMessage
from eventstore.relay import connect_amqp
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


async def parked_count(consumer: Consumer) -> int | None:
    """How many messages wait in the parking queue; None when it does not exist.

    Asked passively, so looking never declares the queue of a consumer that never ran.
    """
    connection = await connect_amqp(consumer.amqp_url, f"{consumer.queue}.admin")
    try:
        channel = await connection.channel()
        try:
            declared = await channel.queue_declare(consumer.parking, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        return int(declared.message_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _queue(name: str, consumer: Consumer) -> Queue:
    spec = CONSUMER_QUEUES[name]
    queue = Queue(name, spec.service, consumer.queue, consumer.parking, spec.bindings)
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            count = await parked_count(consumer)
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
        },
        status=503 if any(q.error for q in queues) else 200,
        title="Dead letters",
    )


@routes.post("/admin/dead-letters/{name}/replay", name="admin_replay")
@page
async def replay(request: web.Request) -> web.Response:
    """Move every parked message of a queue back to it, with a fresh attempt budget."""
    await session.require_admin(request)
    await session.check_csrf(request)
    name = request.match_info["name"]
    consumer = request.app[OPERATOR].consumers.get(name)
    if consumer is None:
        raise PageError(404, "No such queue", f"No consumer is called {name!r}.")
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            if await parked_count(consumer) is None:
                moved = 0
            else:
                moved = await consumer.replay_parked()
    except _BROKER_DOWN as exc:
        raise PageError(
            503, "RabbitMQ is unavailable", f"Replaying stopped: {type(exc).__name__}: {exc}"
        ) from None
    raise Redirect(f"/admin/dead-letters?replayed={moved}&queue={name}#{name}")

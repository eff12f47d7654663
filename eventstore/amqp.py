"""What every AMQP client here shares: a named connection to the first broker node that
answers, durable queues of one type (quorum or classic), the errors worth a reconnect, and
how a topic exchange matches routing keys.

A broker URL may list several comma-separated URLs, the nodes of one RabbitMQ cluster.
Each connection starts from a random one and takes the first that answers, so clients
spread over the nodes and a reconnect finds any node still up.

Quorum queues (replicated, RabbitMQ 3.10 or later) are the default. A quorum queue that
dead-letters does so at least once: it keeps a dead-lettered message until the target
queue confirms it, where a classic queue (at most once) drops it if the target cannot take
it then. RabbitMQ cannot change the type of a queue that exists, so `Queues` keeps a queue
found of the other type as it is, with one warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import aiormq
import aiormq.abc
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

__all__ = [
    "BROKER_ERRORS",
    "CLASSIC",
    "QUEUE_TYPES",
    "QUORUM",
    "Queues",
    "broker_problem",
    "broker_urls",
    "connect_amqp",
    "queue_arguments",
    "redacted",
    "refused",
    "topic_matches",
]

log = logging.getLogger(__name__)

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)
"""A lost or refusing broker: drop the connection and connect again later."""

CONNECT_TIMEOUT = 5.0
"""Seconds one node may take to accept a connection before the next one is tried."""

QUORUM, CLASSIC = "quorum", "classic"
QUEUE_TYPES = (QUORUM, CLASSIC)


def broker_urls(url: str) -> tuple[str, ...]:
    """The URLs in `url`: one, or several separated by commas (a cluster's nodes)."""
    return tuple(part.strip() for part in url.split(",") if part.strip())


def redacted(url: str) -> str:
    """`url` (one or several) with every password replaced by `***`, fit to print."""
    return ",".join(map(_redacted, broker_urls(url)))


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def connect_amqp(
    url: str, name: str, *, timeout: float = CONNECT_TIMEOUT
) -> aiormq.abc.AbstractConnection:
    """A connection to the first node of `url` that answers, trying them all from a random
    one; it shows up as `name` in the broker's connection list. Raises what the only node
    raised, or a `ConnectionError` naming each node's failure."""
    urls = broker_urls(url)
    if not urls:
        raise ValueError("no broker URL given")
    start = random.randrange(len(urls))
    failures: list[str] = []
    for one in urls[start:] + urls[:start]:
        sep = "&" if "?" in one else "?"
        try:
            async with asyncio.timeout(timeout):
                return await aiormq.connect(f"{one}{sep}name={urllib.parse.quote(name)}")
        except BROKER_ERRORS as exc:
            if len(urls) == 1:
                raise
            failures.append(f"{redacted(one)}: {type(exc).__name__}: {exc}".rstrip(": "))
    raise ConnectionError(f"no RabbitMQ node answered ({'; '.join(failures)})")


def queue_arguments(queue_type: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`arguments` as a durable queue of `queue_type` takes them.

    A quorum queue with a dead-letter exchange dead-letters at least once, which RabbitMQ
    allows only with overflow `reject-publish` (the queues here that dead-letter have no
    length limit, so it never rejects anything).
    """
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type {queue_type!r}: one of {', '.join(QUEUE_TYPES)}")
    declared = dict(arguments or {})
    if queue_type == QUORUM:
        declared["x-queue-type"] = QUORUM
        if "x-dead-letter-exchange" in declared:
            declared.setdefault("x-overflow", "reject-publish")
            if declared["x-overflow"] == "reject-publish":
                declared["x-dead-letter-strategy"] = "at-least-once"
    return declared


class Queues:
    """Declares durable queues of `queue_type`; one that exists with the other type is kept
    as it is (RabbitMQ refuses to change it) and named once in a warning. The wanted type is
    tried first every time, so a queue migrated meanwhile is found as it is now."""

    def __init__(self, queue_type: str = QUORUM) -> None:
        queue_arguments(queue_type)  # refuses an unknown type
        self.queue_type = queue_type
        self.kept: dict[str, str] = {}
        """Queues last found of the other type: name -> the type they keep."""

    async def declare(
        self,
        channel: aiormq.abc.AbstractChannel,
        name: str,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare durable queue `name` on `channel`'s connection; the type it has.

        Each attempt runs on a channel of its own, since a refused declaration closes its
        channel. A refusal that the other type's declaration does not also meet is about
        something else (another argument): it is raised.
        """
        wanted = self.queue_type
        try:
            await _declare(channel.connection, name, queue_arguments(wanted, arguments))
        except ChannelPreconditionFailed as refusal:
            other = CLASSIC if wanted == QUORUM else QUORUM
            try:
                await _declare(channel.connection, name, queue_arguments(other, arguments))
            except ChannelPreconditionFailed:
                raise refusal from None
            if self.kept.get(name) != other:
                self.kept[name] = other
                log.warning(
                    "queue %s exists as a %s queue and stays one: RabbitMQ cannot change "
                    "the type of a queue (%s was asked for). To migrate it, stop what "
                    "publishes to it, let it empty, delete it and start its consumers "
                    "again: they declare it as %s (README, 'RabbitMQ')",
                    name,
                    other,
                    wanted,
                    wanted,
                )
            return other
        self.kept.pop(name, None)
        return wanted


async def _declare(
    connection: aiormq.abc.AbstractConnection, name: str, arguments: dict[str, Any]
) -> None:
    channel = await connection.channel()
    try:
        await channel.queue_declare(name, durable=True, arguments=arguments)
    finally:
        if not channel.is_closed:
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()


async def broker_problem(url: str, name: str, *, timeout: float = 2.0) -> str | None:
    """Why the broker at `url` cannot be used right now (it refuses, is unreachable or too
    slow to answer), or None when a connection opens. The reason never holds the URL."""
    connection = None
    try:
        async with asyncio.timeout(timeout):
            connection = await connect_amqp(url, name)
    except TimeoutError:
        return f"the broker did not answer within {timeout:g}s"
    except BROKER_ERRORS as exc:
        return f"the broker is unreachable ({type(exc).__name__}: {exc})"
    finally:
        if connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await connection.close()
    return None


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic exchange routes `routing_key` through a binding of `pattern`: words
    split on dots, `*` stands for exactly one word, `#` for zero or more."""
    return _matches(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_matches(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _matches(rest, words[1:])


async def refused(publishes: Iterable[Awaitable[Any]]) -> int:
    """Await publishes with confirms at once: how many the broker did not ack (raising
    the first error, a lost channel for one)."""
    confirms = await asyncio.gather(*publishes, return_exceptions=True)
    for confirm in confirms:
        if isinstance(confirm, BaseException):
            raise confirm
    return sum(not isinstance(c, Basic.Ack) for c in confirms)

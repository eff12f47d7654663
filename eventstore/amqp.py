"""What every AMQP client here shares: a named connection, the errors worth a reconnect, and
how a topic exchange matches routing keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from typing import Any

import aiormq
import aiormq.abc
from pamqp.commands import Basic

__all__ = ["BROKER_ERRORS", "broker_problem", "connect_amqp", "refused", "topic_matches"]

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
)
"""A lost or refusing broker: drop the connection and connect again later."""


async def connect_amqp(url: str, name: str) -> aiormq.abc.AbstractConnection:
    """An aiormq connection that shows up as `name` in the broker's connection list."""
    sep = "&" if "?" in url else "?"
    return await aiormq.connect(f"{url}{sep}name={name}")


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

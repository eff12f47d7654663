"""What every AMQP client here shares: a named connection, the errors worth a reconnect, and
how a topic exchange matches routing keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

import aiormq
import aiormq.abc
from pamqp.commands import Basic

__all__ = ["BROKER_ERRORS", "connect_amqp", "refused", "topic_matches"]

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

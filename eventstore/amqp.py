"""What every AMQP client here shares: a named connection and the errors worth a reconnect."""

from __future__ import annotations

import asyncio

import aiormq
import aiormq.abc

__all__ = ["BROKER_ERRORS", "connect_amqp"]

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

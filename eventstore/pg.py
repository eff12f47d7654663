"""Postgres connections for the event store and read models."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

__all__ = ["Conn", "Executor", "create_pool", "init_connection"]

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection, whether opened directly or acquired from a pool."""
Executor: TypeAlias = "asyncpg.Pool[asyncpg.Record] | Conn"
"""Anything that runs a statement: a pool or a connection."""

_encode = msgspec.json.Encoder(decimal_format="string").encode


def _encode_json(value: Any) -> str:
    return _encode(value).decode()


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """json/jsonb columns of read models travel as Python values (decimals as strings)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


async def create_pool(
    dsn: str,
    *,
    application_name: str = "microshop",
    min_size: int = 1,
    max_size: int = 10,
    idle_in_transaction_timeout_ms: int = 10_000,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose sessions cannot sit idle in a transaction and hold back the log fence."""
    settings = {
        "application_name": application_name,
        "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
    }
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=settings,
        **kwargs,
    )
    assert pool is not None
    return pool

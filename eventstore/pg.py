"""Postgres connections for the event store and read models.

`Pool` puts a lean fast path in front of an asyncpg pool. asyncpg's own acquire/release
costs about as much client CPU as the query itself (a shielded release task, proxy and
timer bookkeeping, a reset round trip), which halves the rate of short statements such as
an append. `Pool` keeps connections it got from asyncpg in a free list instead of giving
them back after every use, and falls back to asyncpg for everything that is not the
common case: creating, replacing and closing connections, waiting when all are busy, and
cleaning up a connection whose user failed or was cancelled mid-way.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pgproto.pgproto import UUID as _CUUID
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "RELAXED",
    "Conn",
    "Executor",
    "Pool",
    "create_pool",
    "init_connection",
    "parse_uuid",
]

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection, whether opened directly or acquired from a pool."""
Executor: TypeAlias = "Pool | Conn"
"""Anything that runs a statement: a pool or a connection."""

_encode = msgspec.json.Encoder(decimal_format="string").encode

RELAXED = "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"
"""Prefix of a single-statement write (`... SELECT ... FROM relaxed`) whose commit need not
wait for the WAL flush: the setting is local to that statement's own transaction."""


def parse_uuid(text: str) -> uuid.UUID:
    """`uuid.UUID(text)`, parsed by asyncpg's C code when it can: the same value (equal,
    same hash, a `uuid.UUID` to `isinstance`, what asyncpg reads a `uuid` column as) for
    a tenth of the CPU, and written by COPY without a detour through Python. For folds
    that make one per row; text asyncpg refuses (braces, a `urn:` prefix) goes to
    `uuid.UUID`, which takes it or raises its `ValueError`."""
    try:
        return _CUUID(text)
    except ValueError:
        return uuid.UUID(text)


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + _encode(value)  # jsonb's binary format: a version byte, then the text


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """json/jsonb columns of read models travel as Python values (decimals as strings).

    Binary codecs, so that COPY (a projection rebuild) can write them too.
    """
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=_encode,
        decoder=msgspec.json.decode,
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool connections carry no session state (advisory locks and LISTEN use connections
    of their own), so a returned connection needs only the rollback asyncpg always does,
    not the default reset query's extra round trip."""


_BROKEN = (asyncpg.InternalClientError, asyncpg.InterfaceError, OSError)


def _usable(conn: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """False once the connection closed (asyncpg then detaches it from its proxy)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class Pool:
    """A connection pool with asyncpg's guarantees and almost none of its per-use cost."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self.asyncpg = pool
        self._free: list[PoolConnectionProxy[asyncpg.Record]] = []
        self._waiting = 0  # tasks blocked in asyncpg's acquire: they get the next release
        self._discard: list[PoolConnectionProxy[asyncpg.Record]] = []

    def _take(self) -> PoolConnectionProxy[asyncpg.Record] | None:
        """A free connection, or None when asyncpg has to be asked (and maybe waited for)."""
        while self._free:
            conn = self._free.pop()
            if _usable(conn):
                return conn
            self._discard.append(conn)  # the server closed it while it sat here
        return None

    async def _get(self) -> PoolConnectionProxy[asyncpg.Record]:
        while self._discard:  # hand closed ones back so asyncpg replaces them
            await self.asyncpg.release(self._discard.pop())
        self._waiting += 1
        try:
            return await self.asyncpg.acquire()
        finally:
            self._waiting -= 1

    async def _put(
        self, conn: PoolConnectionProxy[asyncpg.Record], error: BaseException | None
    ) -> None:
        if isinstance(error, _BROKEN) and _usable(conn):
            # e.g. the server terminated the session while it was idle: the protocol is
            # stuck until the socket closes, so it must not serve anyone else
            conn.terminate()
        # after a failure or cancellation a query or transaction may be left behind:
        # asyncpg's release waits for the cancellation and rolls back
        if error is not None or self._waiting or not _usable(conn) or conn.is_in_transaction():
            await self.asyncpg.release(conn)
        else:
            self._free.append(conn)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A connection for the duration of the block."""
        conn = self._take() or await self._get()
        try:
            yield conn
        except BaseException as exc:
            await self._put(conn, exc)
            raise
        await self._put(conn, None)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            conn = self._take() or await self._get()
            try:
                result = await getattr(conn, method)(*args, **kwargs)
            except asyncpg.InternalClientError as exc:
                # refused by the client before anything was sent: safe to run elsewhere
                await self._put(conn, exc)
                if attempt == 2:
                    raise
                continue
            except BaseException as exc:
                await self._put(conn, exc)
                raise
            await self._put(conn, None)
            return result
        raise AssertionError("unreachable")

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        return str(await self._call("execute", query, *args, timeout=timeout))

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        await self._call("executemany", query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._call("fetch", query, *args)
        return result

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._call("fetchrow", query, *args)
        return result

    async def fetchval(self, query: str, *args: Any, column: int = 0) -> Any:
        return await self._call("fetchval", query, *args, column=column)

    def get_size(self) -> int:
        return self.asyncpg.get_size()

    def get_idle_size(self) -> int:
        return len(self._free) + self.asyncpg.get_idle_size()

    async def close(self) -> None:
        while self._free or self._discard:
            await self.asyncpg.release((self._free or self._discard).pop())
        await self.asyncpg.close()


async def create_pool(
    dsn: str,
    *,
    application_name: str = "microshop",
    min_size: int = 1,
    max_size: int = 10,
    idle_in_transaction_timeout_ms: int | None = 10_000,
    **kwargs: Any,
) -> Pool:
    """A pool whose sessions cannot sit idle in a transaction and hold back the log fence.

    `idle_in_transaction_timeout_ms=None` sends no such setting: a pooler such as PgBouncer
    refuses startup parameters it does not know (set it on the database or role there)."""
    settings = {"application_name": application_name}
    if idle_in_transaction_timeout_ms is not None:
        settings["idle_in_transaction_session_timeout"] = str(idle_in_transaction_timeout_ms)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        server_settings=settings,
        **kwargs,
    )
    assert pool is not None
    return Pool(pool)

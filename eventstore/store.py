"""The Postgres event store: append with optimistic concurrency, stream reads, global log.

Appends are one statement each (one round trip, one implicit transaction): the expected
version is checked by the same INSERT that writes, and the unique `(stream_id,
stream_version)` key turns a lost race into a `ConcurrencyError`. Concurrent appends of one
process share a statement and a transaction (`grouping.py`), each with its own check and
its own result. Writers never take a table lock; readers of the global log fence on the
oldest running transaction instead (see `GLOBAL_LOG_SQL`), so an event whose transaction
commits late is never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Sequence,
)
from typing import Any, TypeVar

import asyncpg

from .errors import ConcurrencyError, DuplicateEventError
from .events import (
    METADATA_DECODER,
    START,
    EventRegistry,
    Metadata,
    Position,
    RecordedEvent,
    category_of,
)
from .events import registry as default_registry
from .grouping import Append, GroupCommit
from .pg import Conn, Executor, Pool, init_connection
from .port import AppendResult, EventStore, Sealer
from .session import Session
from .wakeup import CHANNEL, LogWatcher, Notifier

_T = TypeVar("_T")

__all__ = ["COLUMNS", "COLUMNS_WITHOUT_METADATA", "GLOBAL_LOG_SQL", "LogPage", "PostgresEventStore"]

COLUMNS = (
    "global_position, tx_id, stream_id, stream_version, event_id, event_type, "
    "schema_version, data::text, metadata::text, recorded_at"
)

COLUMNS_WITHOUT_METADATA = COLUMNS.replace("metadata::text", "'{}'::text")
"""`COLUMNS` with empty metadata, for readers that never look at it."""

# Everything before the fence is settled: every transaction with a smaller id has ended.
_LOG_SQL = """
SELECT {columns} FROM events
WHERE (tx_id, global_position) > ($1::xid8, $2::bigint)
  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id, global_position
LIMIT $3"""
GLOBAL_LOG_SQL = _LOG_SQL.format(columns=COLUMNS)

# A page of the log up to the fence (flagged settled) and, in the same statement, the first
# committed event (of categories $4, NULL: any) the fence still holds back: a reader learns
# whether to look again soon without a second round trip. The second part starts its index
# scan at the fence itself, not at $1: rows between the two are settled and already read.
_FENCE = "pg_snapshot_xmin(pg_current_snapshot())"
_HELD_COLUMNS = COLUMNS.replace("metadata::text", "NULL::text").replace("data::text", "NULL::text")
_PAGE_SQL = f"""
(SELECT {COLUMNS}, true FROM events
 WHERE (tx_id, global_position) > ($1::xid8, $2::bigint) AND tx_id < {_FENCE}
 ORDER BY tx_id, global_position LIMIT $3)
UNION ALL
(SELECT {_HELD_COLUMNS}, false FROM events
 WHERE (tx_id, global_position) > (
     greatest($1::xid8, {_FENCE}),
     CASE WHEN $1::xid8 < {_FENCE} THEN -1 ELSE $2::bigint END)
   AND ($4::text[] IS NULL OR split_part(stream_id, '-', 1) = ANY($4::text[]))
 ORDER BY tx_id, global_position LIMIT 1)"""


@dataclasses.dataclass(frozen=True, slots=True)
class LogPage:
    """One read of the global log's tail (`PostgresEventStore.read_page`)."""

    rows: list[asyncpg.Record]
    """Up to `limit` undecoded rows of `COLUMNS` after the position read from, in log
    order, up to the fence."""
    full: bool
    """The read hit its limit: more settled events may follow, read again."""
    held_back: bool
    """Committed events (of the categories asked about) follow the fence: an open
    transaction holds them back (`LogWatcher.settle` looks again soon)."""


async def sorts_bytewise(conn: Executor) -> bool:
    """Whether the database compares text byte by byte (C collation), so that a range
    of the `stream_id` index holds exactly the ids with a given prefix."""
    row = await conn.fetchrow(  # the libc setting, and how text really compares: a
        # database may take its collation from ICU whatever `datcollate` says
        "SELECT datcollate, 'B' < 'a' AS bytewise FROM pg_database"
        " WHERE datname = current_database()"
    )
    collation = "" if row is None else str(row["datcollate"])
    return (
        row is not None
        and row["bytewise"]
        and (collation in ("C", "POSIX") or collation.startswith("C."))
    )


def prefix_range(prefix: str) -> tuple[str, str]:
    """`[low, high)`: the byte-ordered range of the strings starting with `prefix`."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern of the strings starting with `prefix`."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def head(conn: Executor) -> Position:
    """The last position readers may see now: no transaction still running can commit an
    event at or before it."""
    row = await conn.fetchrow(
        "SELECT tx_id, global_position FROM events"
        " WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())"
        " ORDER BY tx_id DESC, global_position DESC LIMIT 1"
    )
    return START if row is None else Position(row[0], row[1])


_APPEND_ONE = """
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
SELECT $1, $2::int + 1, $3, $4, $5, $6::text::jsonb, $7::text::jsonb
WHERE $2::int = 0 OR EXISTS (SELECT FROM events WHERE stream_id = $1 AND stream_version = $2::int)
RETURNING global_position, tx_id"""

_APPEND_MANY = """
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
SELECT $1, $2::int + e.n, e.event_id, e.event_type, e.schema_version, e.data::jsonb, $7::text::jsonb
FROM unnest($3::uuid[], $4::text[], $5::int[], $6::text[])
     WITH ORDINALITY AS e(event_id, event_type, schema_version, data, n)
WHERE $2::int = 0 OR EXISTS (SELECT FROM events WHERE stream_id = $1 AND stream_version = $2::int)
RETURNING global_position, tx_id"""


def _notifying(append: str) -> str:
    """`append` that also wakes readers (`pg_notify($8, $9)`, sent at the commit of the
    caller's transaction, and only when it appended): one statement, not two."""
    return (
        f"WITH appended AS ({append.strip()})\n"
        "SELECT global_position, tx_id, (SELECT pg_notify($8, $9)) FROM appended"
    )


_APPEND_ONE_NOTIFYING = _notifying(_APPEND_ONE)
_APPEND_MANY_NOTIFYING = _notifying(_APPEND_MANY)

_STREAM_VERSION = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1"

_STORED = """
SELECT event_id, stream_id, stream_version, tx_id, global_position FROM events
WHERE event_id = ANY($1::uuid[])"""

_READ_STREAM = f"""
SELECT {COLUMNS} FROM events
WHERE stream_id = $1 AND stream_version > $2
ORDER BY stream_version
LIMIT $3"""


class PostgresEventStore(EventStore):
    """Append-only store of event streams in one Postgres table (`migrations/0001`)."""

    def __init__(
        self,
        pool: Pool,
        *,
        registry: EventRegistry = default_registry,
        dsn: str | None = None,
        notify_interval: float = 0.005,
        application_name: str = "microshop",
        pooler: bool = False,
        vault: Sealer | None = None,
        group_commit: bool = True,
    ) -> None:
        """`dsn`: where the process's session connection goes (LISTEN, leader locks,
        NOTIFY: `eventstore.session`); a direct one when the pool's goes through a
        transaction-mode pooler (`pooler`: then work that needs a session for a while,
        rebuilds and verifies, connects to `dsn` too). Without it, readers poll and nobody
        can lead. `vault` seals personal data before it is stored. `group_commit`: appends
        outside a caller's transaction that arrive while one is in flight go together
        (`grouping.py`); off, each is a statement of its own."""
        super().__init__(registry, vault)
        self.pool = pool
        self.dsn = dsn
        self.pooler = pooler and dsn is not None
        self.application_name = application_name
        self.session = (
            None if dsn is None else Session(dsn, application_name=f"{application_name}-session")
        )
        self.notifier = Notifier(pool, session=self.session, interval=notify_interval)
        self.group = GroupCommit(pool, self._insert) if group_commit else None

    # -- writing -------------------------------------------------------------------------

    async def _append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | None,
        metadata: Metadata,
        event_ids: tuple[uuid.UUID, ...],
        conn: Conn | None,
    ) -> AppendResult:
        """One INSERT (with others of this process, outside a caller's transaction);
        inside the caller's transaction (`conn`) the same statement wakes readers at its
        commit, and a lost race (`ConcurrencyError`, whatever `expected_version`) aborts
        that transaction like any failed statement: the caller retries in a new one (its
        id was taken before the events it lost to, and the log orders by it)."""
        encode, type_of = self.registry.encode, self.registry.type_of
        rows = [(*type_of(e), encode(e)) for e in events]  # refuses unknown types first
        append = Append(stream_id, expected_version or 0, event_ids, rows, encode(metadata))
        in_transaction = conn is not None and conn.is_in_transaction()
        if expected_version is not None:
            result = await self._write(append, conn)
        else:
            for attempt in range(10):  # ANY: retry lost races for the next version
                version = await self._current_version(stream_id, conn)
                try:
                    result = await self._write(append._replace(expected=version), conn)
                    break
                except ConcurrencyError:
                    if attempt == 9 or in_transaction:
                        raise
        if not in_transaction:
            self.notifier.poke(category_of(stream_id))
        return result

    async def _write(self, append: Append, conn: Conn | None) -> AppendResult:
        if conn is None and self.group is not None:
            return await self.group.append(append)
        return await self._insert(append, conn)

    async def _insert(self, append: Append, conn: Conn | None = None) -> AppendResult:
        """`append` in a statement of its own (inside the caller's transaction, one that
        also wakes readers at its commit)."""
        stream_id, expected, ids, rows, meta = append
        executor: Any = conn if conn is not None else self.pool
        in_transaction = conn is not None and conn.is_in_transaction()
        wake = (CHANNEL, category_of(stream_id)) if in_transaction else ()
        try:
            if len(rows) == 1:
                name, version, data = rows[0]
                sql = _APPEND_ONE_NOTIFYING if in_transaction else _APPEND_ONE
                found = await executor.fetch(
                    sql, stream_id, expected, ids[0], name, version, data, meta, *wake
                )
            else:
                found = await executor.fetch(
                    _APPEND_MANY_NOTIFYING if in_transaction else _APPEND_MANY,
                    stream_id,
                    expected,
                    list(ids),
                    [r[0] for r in rows],
                    [r[1] for r in rows],
                    [r[2] for r in rows],
                    meta,
                    *wake,
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_event_id_key":
                raise DuplicateEventError([str(i) for i in ids]) from exc
            # a caller's transaction is aborted now: nothing more can be asked on it, and
            # another connection of the pool it holds one of might never come
            actual = None if in_transaction else await self._current_version(stream_id, conn)
            raise ConcurrencyError(stream_id, expected, actual) from exc
        if not found:  # the expected version does not exist: the stream is behind it
            actual = await self._current_version(stream_id, conn)
            raise ConcurrencyError(stream_id, expected, actual)
        last = found[0] if len(found) == 1 else max(found, key=lambda r: r[0])
        return AppendResult(expected + len(rows), Position(last[1], last[0]), ids)

    def _clash_aborts(self, conn: Conn | None) -> bool:
        return conn is not None and conn.is_in_transaction()  # its INSERT failed

    async def _stored(
        self, event_ids: tuple[uuid.UUID, ...], conn: Conn | None
    ) -> dict[uuid.UUID, tuple[str, int, Position]]:
        executor: Any = conn if conn is not None else self.pool
        rows = await executor.fetch(_STORED, list(event_ids))
        return {r[0]: (r[1], r[2], Position(r[3], r[4])) for r in rows}

    async def _current_version(self, stream_id: str, conn: Conn | None) -> int:
        executor: Any = conn if conn is not None else self.pool
        return int(await executor.fetchval(_STREAM_VERSION, stream_id))

    # -- reading streams -----------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        """The version of a stream (0: it has no events)."""
        return int(await self.pool.fetchval(_STREAM_VERSION, stream_id))

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        conn: Conn | None = None,
    ) -> list[RecordedEvent]:
        """The events of one stream in version order (a stream that does not exist: [])."""
        executor: Any = conn if conn is not None else self.pool
        rows = await executor.fetch(_READ_STREAM, stream_id, after_version, limit)
        return self.decode_rows(rows)

    # -- reading the global log ----------------------------------------------------------

    def decode_rows(
        self,
        rows: Sequence[asyncpg.Record],
        categories: Collection[str] | None = None,
        *,
        lenient: bool = False,
    ) -> list[RecordedEvent]:
        """Typed events from rows of `COLUMNS`.

        With `categories`, only events of those stream categories get their `data` decoded
        (the others carry None): a reader never decodes, or trips over, what it ignores.
        `lenient` (the global log's readers): an event this code cannot read comes with
        `Undecodable` data instead of failing the whole batch. A row an upcaster splits
        gives several events (sharing its envelope); one it drops gives `Dropped` data.
        """
        registry, meta = self.registry, METADATA_DECODER.decode
        try:  # the common case: one event a row, every one readable
            return self._decode_simple(rows, categories, registry.decode)
        except Exception:
            pass  # a row that splits, or one this code cannot read: row by row
        events = []
        for r in rows:
            if categories is not None and category_of(r[2]) not in categories:
                found: list[Any] = [None]
            else:
                found = registry.decode_rows_data(r[5], r[6], r[7], lenient=lenient)
            for data in found:
                events.append(
                    RecordedEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], data, meta(r[8]), r[9])
                )
        return events

    @staticmethod
    def _decode_simple(
        rows: Sequence[asyncpg.Record],
        categories: Collection[str] | None,
        decode: Callable[[str, int, str], Any],
    ) -> list[RecordedEvent]:
        meta = METADATA_DECODER.decode
        if categories is None:
            return [
                RecordedEvent(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    decode(r[5], r[6], r[7]),
                    meta(r[8]),
                    r[9],
                )
                for r in rows
            ]
        return [
            RecordedEvent(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                decode(r[5], r[6], r[7]) if category_of(r[2]) in categories else None,
                meta(r[8]),
                r[9],
            )
            for r in rows
        ]

    async def read_all(
        self,
        after: Position = START,
        *,
        limit: int = 1000,
        categories: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """One batch of the global log after `after`, in commit-safe order."""
        rows = await self.pool.fetch(GLOBAL_LOG_SQL, after[0], after[1], limit)
        return self.decode_rows(rows, categories, lenient=True)

    async def read_page(
        self,
        after: Position = START,
        *,
        limit: int = 1000,
        categories: Collection[str] | None = None,
        conn: Conn | None = None,
    ) -> LogPage:
        """The log after `after` up to the fence, at most `limit` events, and whether
        committed events of `categories` (None: any) wait behind the fence: one round
        trip, where reading and then asking about the fence would take two."""
        cats = None if categories is None else list(categories)
        executor = self.pool if conn is None else conn
        rows = await executor.fetch(_PAGE_SQL, after[0], after[1], limit, cats)
        held_back = bool(rows) and not rows[-1][10]
        if held_back:
            rows = rows[:-1]
        return LogPage(rows, len(rows) >= limit, held_back)

    async def iter_raw(
        self,
        after: Position = START,
        *,
        batch_size: int = 2000,
        conn: Conn | None = None,
        columns: str = COLUMNS,
    ) -> AsyncGenerator[list[asyncpg.Record], None]:
        """Undecoded batches of the global log up to the fence, the next one prefetched.

        The query for batch N+1 goes out before batch N is handed over, so Postgres
        produces it while the caller works on batch N. Close the iterator when leaving it
        early (`contextlib.aclosing`): that cancels the prefetch before the connection
        goes back to the pool. `columns`: fewer than `COLUMNS` for a reader that needs
        less, starting with `global_position, tx_id`.
        """
        sql = GLOBAL_LOG_SQL if columns == COLUMNS else _LOG_SQL.format(columns=columns)

        async def fetch(conn: Conn, after: Position) -> list[asyncpg.Record]:
            return await conn.fetch(sql, after[0], after[1], batch_size)

        def more(rows: list[asyncpg.Record]) -> Position | None:
            return Position(rows[-1][1], rows[-1][0]) if len(rows) >= batch_size else None

        batches = self._prefetching(conn, fetch, after, more)
        async with contextlib.aclosing(batches):
            async for rows in batches:
                if rows:
                    yield rows

    async def iter_pages(
        self,
        after: Position = START,
        *,
        batch_size: int = 2000,
        categories: Collection[str] | None = None,
        conn: Conn | None = None,
    ) -> AsyncGenerator[LogPage, None]:
        """`read_page` after `after` until a page is not full (that one, perhaps empty,
        included), the next page prefetched while the caller works on a full one, as in
        `iter_raw`. Every page tells what the fence holds back when it was read."""

        async def fetch(conn: Conn, after: Position) -> LogPage:
            return await self.read_page(after, limit=batch_size, categories=categories, conn=conn)

        def more(page: LogPage) -> Position | None:
            return Position(page.rows[-1][1], page.rows[-1][0]) if page.full else None

        pages = self._prefetching(conn, fetch, after, more)
        async with contextlib.aclosing(pages):
            async for page in pages:
                yield page

    async def _prefetching(
        self,
        conn: Conn | None,
        fetch: Callable[[Conn, Position], Awaitable[_T]],
        after: Position,
        more: Callable[[_T], Position | None],
    ) -> AsyncGenerator[_T, None]:
        """`fetch(conn, after)`, then `fetch` from `more(result)` until that is None, each
        fetch sent before the previous result is handed over; on one connection (the
        pool's when `conn` is None)."""
        async with contextlib.AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(self.pool.acquire())
            pending: asyncio.Future[_T] | None = None
            try:
                result = await fetch(conn, after)
                while (following := more(result)) is not None:
                    pending = asyncio.ensure_future(fetch(conn, following))
                    await asyncio.sleep(0)  # let the prefetch query go out
                    yield result
                    result = await pending
                    pending = None
                yield result
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)

    async def iter_all(
        self,
        after: Position = START,
        *,
        batch_size: int = 2000,
        conn: Conn | None = None,
        categories: Collection[str] | None = None,
    ) -> AsyncGenerator[list[RecordedEvent], None]:
        """Typed batches of the global log after `after`, up to the fence."""
        batches = self.iter_raw(after, batch_size=batch_size, conn=conn)
        async with contextlib.aclosing(batches):
            async for rows in batches:
                yield self.decode_rows(rows, categories, lenient=True)

    def watcher(
        self, *, poll_interval: float = 0.5, categories: frozenset[str] | None = None
    ) -> LogWatcher:
        """A wake-up source for global-log readers: NOTIFY from every process plus this
        one; with `categories`, only appends to those wake it (polling still reads all)."""
        watcher = LogWatcher(self.session, poll_interval=poll_interval, categories=categories)
        self.notifier.local.append(watcher)
        return watcher

    def forget(self, watcher: LogWatcher) -> None:
        if watcher in self.notifier.local:
            self.notifier.local.remove(watcher)

    async def head(self) -> Position:
        """The last position readers may see now (the fence applied)."""
        return await head(self.pool)

    @contextlib.asynccontextmanager
    async def dedicated(self) -> AsyncIterator[Conn]:
        """A connection for work that keeps a session for a while (a rebuild's lock and
        shadow table, a verify's temporary tables): one of the pool's, or, when the pool
        goes through a transaction-mode pooler, a direct one of its own."""
        if not self.pooler:
            async with self.pool.acquire() as pooled:
                yield pooled
            return
        async with self.direct("work") as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def direct(self, purpose: str) -> AsyncIterator[Conn]:
        """A connection of its own to `dsn`, outside the pool (named
        `{application_name}-{purpose}` in `pg_stat_activity`)."""
        assert self.dsn is not None
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
            self.dsn, server_settings={"application_name": f"{self.application_name}-{purpose}"}
        )
        try:
            await init_connection(conn)
            yield conn
        finally:
            await conn.close()

    async def close(self) -> None:
        if self.group is not None:
            await self.group.wait()
        await self.notifier.close()
        if self.session is not None:
            await self.session.close()

"""Group commit: concurrent appends of one process share one statement and one transaction.

Guarantee: every append keeps its own expected-version check and gets its own result, or
its own `ConcurrencyError` / `DuplicateEventError`, exactly as if it had been sent alone;
grouping only changes how many appends one round trip and one commit carry.

How: one statement is in flight at a time. An append that finds none in flight is sent
at once, alone, by its caller (so a lone append costs what it did before grouping: no
timer, no task). Appends that arrive meanwhile queue; when the statement returns, one
task sends everything queued as one group (`GROUP_SQL`), then the next group, until the
queue is empty. A group never holds two appends to one stream (the later one waits for
the next group), so it cannot break the `(stream_id, stream_version)` key by itself, and
each member's check (`actual = expected`, read in the statement's own snapshot) decides
alone whether that member lands. A group is one transaction, so the global log's fence
needs nothing new.

When the statement fails as a whole (a writer in another process took a version first, an
event id is stored already, Postgres refused a value), nothing was written: the members
are sent again one by one, each getting what it would have got alone (the store's single
append). When the connection breaks, whether the group committed is unknown: every member
gets that error, as a lone append would (sending them again could write twice).

Cancellation: an append cancelled while queued is dropped and writes nothing. Once its
group is sent, cancelling the caller returns at once but does not stop the group: the
statement completes for the other members and the append may land (as a lone append
cancelled mid-statement may have landed).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import asyncpg

from .errors import ConcurrencyError
from .events import Position
from .pg import Pool
from .port import AppendResult

__all__ = ["GROUP_SQL", "Append", "GroupCommit"]


class Append(NamedTuple):
    """One append, encoded: its events as (type name, schema version, JSON text)."""

    stream_id: str
    expected: int
    ids: tuple[uuid.UUID, ...]
    rows: list[tuple[str, int, str]]
    metadata: str


# $1-$3 per append (stream, expected version, metadata); $4-$9 per event (its append's
# ordinal, stream version, id, type, schema version, data). Each member's stream version
# is read once (`actual`); the members whose check fails come back as one row with it.
GROUP_SQL = """
WITH a AS MATERIALIZED (
    SELECT a.i, a.stream_id, a.expected, a.metadata,
           (SELECT coalesce(max(s.stream_version), 0) FROM events s
            WHERE s.stream_id = a.stream_id) AS actual
    FROM unnest($1::text[], $2::int[], $3::text[])
         WITH ORDINALITY AS a(stream_id, expected, metadata, i)
), written AS (
    INSERT INTO events
        (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
    SELECT a.stream_id, e.v, e.event_id, e.event_type, e.schema_version, e.data::jsonb,
           a.metadata::jsonb
    FROM unnest($4::int[], $5::int[], $6::uuid[], $7::text[], $8::int[], $9::text[])
         WITH ORDINALITY AS e(i, v, event_id, event_type, schema_version, data, k)
    JOIN a ON a.i = e.i
    WHERE a.actual = a.expected
    ORDER BY e.k
    RETURNING stream_id, global_position, tx_id
)
SELECT stream_id, global_position, tx_id, NULL::int FROM written
UNION ALL
SELECT stream_id, NULL, NULL, actual FROM a WHERE actual <> expected"""

Member = tuple[Append, "asyncio.Future[AppendResult]"]


class GroupCommit:
    """Sends the appends of one process, grouping those that arrive while one is in flight.

    `alone` sends one append by itself (the store's usual statement); `max_events` caps a
    group (an append larger than that still goes, alone in its group).
    """

    def __init__(
        self,
        pool: Pool,
        alone: Callable[[Append], Awaitable[AppendResult]],
        *,
        max_events: int = 500,
    ) -> None:
        self._pool = pool
        self._alone = alone
        self.max_events = max_events
        self._queue: collections.deque[Member] = collections.deque()
        self._busy = False  # a statement is in flight
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def append(self, append: Append) -> AppendResult:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a store used on a new loop: nothing old is in flight
            self._loop, self._busy, self._queue, self._task = loop, False, collections.deque(), None
        if not self._busy:
            self._busy = True
            try:
                return await self._alone(append)
            finally:
                self._busy = False
                self._next()
        done: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.append((append, done))
        return await done  # cancelled: `done` is cancelled too, and `_take` drops it

    async def wait(self) -> None:
        """Until the groups sent or queued now are answered (before the pool closes)."""
        if self._task is not None and self._loop is asyncio.get_running_loop():
            await asyncio.wait([self._task])

    def _next(self) -> None:
        """Start sending what queued while a statement was in flight."""
        if self._queue and not self._busy:
            self._busy = True
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="group")

    async def _drain(self) -> None:
        group: list[Member] = []
        try:
            while group := self._take():
                await self._send(group)
                await asyncio.sleep(0)  # the callers just answered may append again: join them
        except BaseException as exc:  # cancelled at shutdown, or a bug: nobody waits forever
            for _, done in [*group, *self._queue]:
                if not done.done():
                    if isinstance(exc, Exception):
                        done.set_exception(exc)
                    else:
                        done.cancel()
            self._queue.clear()
            raise
        finally:
            self._busy = False
            self._task = None

    def _take(self) -> list[Member]:
        """The next group: in arrival order, one append per stream, up to `max_events`."""
        group: dict[str, Member] = {}
        rest: collections.deque[Member] = collections.deque()
        events = 0
        while self._queue:
            member = self._queue.popleft()
            append, done = member
            if done.done():  # its caller was cancelled while it queued
                continue
            if append.stream_id in group:
                rest.append(member)
            elif group and events + len(append.rows) > self.max_events:
                rest.append(member)
                rest.extend(self._queue)
                break
            else:
                group[append.stream_id] = member
                events += len(append.rows)
        self._queue = rest
        return list(group.values())

    async def _send(self, group: list[Member]) -> None:
        if len(group) == 1:
            await self._one_by_one(group)
            return
        streams: list[str] = []
        expected: list[int] = []
        metadata: list[str] = []
        of: list[int] = []
        versions: list[int] = []
        ids: list[uuid.UUID] = []
        types: list[str] = []
        schemas: list[int] = []
        data: list[str] = []
        for i, (append, _) in enumerate(group, 1):
            streams.append(append.stream_id)
            expected.append(append.expected)
            metadata.append(append.metadata)
            for n, (name, schema, text) in enumerate(append.rows, 1):
                of.append(i)
                versions.append(append.expected + n)
                types.append(name)
                schemas.append(schema)
                data.append(text)
            ids.extend(append.ids)
        try:
            rows = await self._pool.fetch(
                GROUP_SQL, streams, expected, metadata, of, versions, ids, types, schemas, data
            )
        except asyncpg.PostgresError:  # refused as a whole, so nothing was written
            await self._one_by_one(group)
            return
        except Exception as exc:  # the connection broke: it may have committed, or not
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            return
        last: dict[str, tuple[int, int]] = {}
        behind: dict[str, int] = {}
        for stream_id, position, tx_id, actual in rows:
            if position is None:
                behind[stream_id] = actual
            elif stream_id not in last or position > last[stream_id][0]:
                last[stream_id] = (position, tx_id)
        for append, done in group:
            if done.done():  # cancelled after the group was sent: it may have landed
                continue
            stream_id = append.stream_id
            if stream_id in last:
                position, tx_id = last[stream_id]
                version = append.expected + len(append.rows)
                done.set_result(AppendResult(version, Position(tx_id, position), append.ids))
            else:
                error = ConcurrencyError(stream_id, append.expected, behind[stream_id])
                done.set_exception(error)

    async def _one_by_one(self, group: list[Member]) -> None:
        for append, done in group:
            if done.done():
                continue
            try:
                result = await self._alone(append)
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(result)

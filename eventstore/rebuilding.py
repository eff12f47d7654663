"""Rebuilding a projection from the log into a shadow table, in bounded memory, resumably.

A rebuild never holds the read model in memory. It writes the shadow table
`<table>__rebuild` beside the live one, which keeps serving reads, in two phases:

1. *By stream*, for a projection whose rows each come from one stream's events
   (`Projection.keyed_by_stream`): the log up to a fence (the head when the rebuild
   started) is read in pages of the `(stream_id, stream_version)` index, each stream is
   folded whole (`Projection.fold_stream`), and the rows are COPYed in, chunk by chunk,
   into a table without indexes. The streams are cut into parts (ranges of stream ids
   of about as many events) which several processes fold side by side (`workers`: this
   one and forked ones, see `forking`). Then the live table's indexes and key
   constraints are built on it, under temporary names.
2. *In log order*: the events after the fence (for any other projection: the whole log)
   are applied a batch at a time, loading the rows they touch from the shadow and
   upserting them, as a runner does.

Each COPY chunk and each batch commits with the rebuild's progress row
(`projection_rebuilds`, and the part's in `projection_rebuild_parts`), so a killed
rebuild continues where it stopped (`resume=True`), and a new one without it discards
what an interrupted one left. At the end: `ANALYZE`, then under the checkpoint lock (a
live runner pauses only now) the last events, the swap, the indexes and constraints
renamed to the live table's names (so migrations that name them keep working), and the
checkpoint moved to the rebuilt position.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import operator
import os
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Sequence,
)
from datetime import datetime
from typing import Any

import asyncpg

from . import checkpoints, forking
from .errors import FoldFailed, RebuildInProgress
from .events import Dropped, Position, RecordedEvent, Undecodable, category_of
from .pg import Conn, Executor, Pool
from .projection import Projection, Row, load_rows, write_rows
from .store import (
    COLUMNS,
    COLUMNS_WITHOUT_METADATA,
    GLOBAL_LOG_SQL,
    PostgresEventStore,
    head,
    like_prefix,
    prefix_range,
    sorts_bytewise,
)

__all__ = ["Interrupted", "Part", "RebuildResult", "default_workers", "interrupted", "rebuild"]

COPY_ROWS = 10_000
"""Rows the by-stream phase COPYs (and commits with its progress) at a time."""
PAGE_SIZE = 5_000
"""Events the by-stream phase reads at a time."""
PARALLEL_FROM = 50_000
"""Events from which the by-stream phase is worth sharing with forked workers."""
PARTS_PER_WORKER = 4
"""Parts the streams are cut into per process folding them (small enough to even out
processes that fold at different speeds, large enough to read in long runs)."""


def default_workers() -> int:
    """Processes a rebuild folds in by default: one per CPU, at most 4 (Postgres needs
    its share of the machine too)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int  # events of the projection's streams folded (by this and earlier runs)
    rows: int  # rows in the rebuilt table
    position: Position  # where the checkpoint now is
    resumed: bool = False  # continued an interrupted rebuild
    discarded: bool = False  # threw away what an interrupted one left
    worker_peaks_kb: tuple[int, ...] = ()  # peak memory of each forked worker


@dataclasses.dataclass(slots=True)
class Part:
    """A range of the projection's streams the by-stream phase folds as one piece of work:
    stream ids from `low` (None: the first) below `high` (None: to the last), done up to
    `after_stream` (`events` events so far)."""

    part: int
    low: str | None
    high: str | None
    after_stream: str | None = None
    events: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Interrupted:
    """What a rebuild that stopped midway left: its shadow table and how far it got."""

    projection: str
    shadow: str
    phase: str
    events: int
    total: int | None
    started_at: datetime
    updated_at: datetime


_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('microshop:rebuild:' || $1, 0))"
_TRY_XACT_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('microshop:rebuild:' || $1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('microshop:rebuild:' || $1, 0))"


async def interrupted(pool: Pool) -> list[Interrupted]:
    """Rebuilds that stopped midway and that nobody is running now, oldest first."""
    found = []
    async with pool.acquire() as conn:
        for row in await conn.fetch(
            """SELECT projection, shadow, phase, events, total, started_at, updated_at
               FROM projection_rebuilds ORDER BY started_at"""
        ):
            async with conn.transaction():  # a lock that ends with it, whatever the pooling
                free = await conn.fetchval(_TRY_XACT_LOCK, row["projection"])
            if free:  # nobody runs it
                found.append(Interrupted(**dict(row)))
    return found


async def rebuild(
    store: PostgresEventStore,
    projection: Projection,
    *,
    progress: Callable[[int], None] | None = None,
    expect: Callable[[int], None] | None = None,
    batch_size: int = 5000,
    unreadable: Callable[[RecordedEvent], None] | None = None,
    resume: bool = False,
    workers: int = 1,
) -> RebuildResult:
    """Rebuild `projection` from the log into a shadow table, then swap it in.

    Reads of the live table keep working; a live runner pauses only for the final swap
    and continues from the rebuilt position. One rebuild of a projection at a time,
    cluster-wide: a second one raises `RebuildInProgress`. `progress(n)` after every n
    events folded; `expect(n)` once, with how many the rebuild expects (more may arrive
    meanwhile). An event of the projection this code cannot read is left out and told to
    `unreadable`, which may raise to stop the rebuild: then nothing is swapped in and the
    shadow is dropped. `resume`: continue an interrupted rebuild (start one if none was).
    Any other stop (a kill, a lost connection) leaves the rebuild resumable. `workers`:
    processes folding the by-stream phase (this one and forked ones with their own two
    connections each; `default_workers()` is what the CLI uses; one needs `store.dsn`).
    """
    async with store.dedicated() as conn, store.dedicated() as reader:
        live = await checkpoints.stored_version(conn, projection.name)
        if live is not None and live != projection.version:
            raise checkpoints.VersionChanged(projection.name, live, projection.version)
        if not await conn.fetchval(_LOCK, projection.name):
            raise RebuildInProgress(projection.name)
        try:
            job = Fold(
                store,
                projection,
                conn,
                reader,
                progress,
                batch_size,
                unreadable,
                workers=workers if store.dsn is not None else 1,
            )
            with _fewer_collections():
                return await job.run(resume, expect)
        finally:
            await conn.execute(_UNLOCK, projection.name)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect the youngest garbage generation less often while rebuilding.

    Folding a page makes tens of thousands of containers (records, decoded events, rows,
    their JSON values), freed by their reference counts, not by the collector; a
    collection only walks what is alive (a page or two and a chunk of rows). At the
    default threshold (700 allocations) it runs hundreds of times a page, some 15% of a
    rebuild, at 50,000 still 5%; at 500,000 once every few pages. Memory stays bounded
    (a page and a chunk are all a rebuild holds, and garbage cycles still go every few
    pages); the threshold is restored after.
    """
    before = gc.get_threshold()
    gc.set_threshold(500_000, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


class Abandon(Exception):
    """`unreadable` stopped the rebuild with `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclasses.dataclass(slots=True)
class Fold:
    """Folds the log into a table: a rebuild's shadow, or the table a verify compares
    with (for the package: `rebuild` and `verify` drive it)."""

    store: PostgresEventStore
    projection: Projection
    conn: Conn  # holds the rebuild lock; writes the shadow and the progress row
    reader: Conn  # reads the log (the next page while this one is folded)
    progress: Callable[[int], None] | None
    batch_size: int
    unreadable: Callable[[RecordedEvent], None] | None
    shadow: str = ""  # the table written (default: `<table>__rebuild`)
    persist: bool = True  # commit each chunk with the progress row (a verify does not)
    until: Position | None = None  # read the log in log order only up to here
    workers: int = 1  # processes folding the by-stream phase (forked: only with `persist`)
    events: int = 0
    peaks: list[int] = dataclasses.field(default_factory=list)  # the workers' peaks, kB

    def __post_init__(self) -> None:
        self.shadow = self.shadow or shadow_of(self.projection)

    async def run(self, resume: bool, expect: Callable[[int], None] | None) -> RebuildResult:
        name = self.projection.name
        state = await self.conn.fetchrow(
            "SELECT * FROM projection_rebuilds WHERE projection = $1", name
        )
        resumed = resume and state is not None
        discarded = state is not None and not resume
        if state is None or discarded:
            state = await self._start()
        self.events = state["events"]
        if expect is not None:
            expect(state["total"])
        if self.progress is not None and self.events:
            self.progress(self.events)
        try:
            if state["phase"] == "streams":
                fence = Position(state["fence_tx"], state["fence_position"])
                await self.by_parts(fence)
                table, shadow = self.projection.table, self.shadow
                await _build_indexes([self.conn, self.reader], table, shadow)
                async with self.conn.transaction():
                    await _add_key_constraints(self.conn, table, shadow)
                    await self._save_progress(fence)
                position = fence
            else:
                position = Position(state["after_tx"], state["after_position"])
            position = await self.in_log_order(position)
            position = await self._swap(position)
        except Abandon as exc:
            await self._discard()
            raise exc.error from None
        rows: int = await self.conn.fetchval(f"SELECT count(*) FROM {self.projection.table}")
        return RebuildResult(self.events, rows, position, resumed, discarded, tuple(self.peaks))

    async def _start(self) -> asyncpg.Record:
        """A fresh shadow table and progress row (what an earlier rebuild left: gone)."""
        projection, conn = self.projection, self.conn
        fence = await head(conn)
        by_stream = projection.keyed_by_stream
        parallel = by_stream and self.workers > 1 and self.persist
        expected, cuts = await _side_by_side(  # on a large log, both take a while
            count_events(self.reader, projection),
            _cuts(conn, projection, self.workers * PARTS_PER_WORKER if parallel else 1),
        )
        if expected < PARALLEL_FROM:
            cuts = []
        async with conn.transaction():
            await conn.execute(
                f"DROP TABLE IF EXISTS {self.shadow}; "
                f"CREATE TABLE {self.shadow} (LIKE {projection.table} INCLUDING DEFAULTS "
                "INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY)"
            )
            if not by_stream:  # upserted into from the start
                await _build_indexes([conn], projection.table, self.shadow)
                await _add_key_constraints(conn, projection.table, self.shadow)
            state = await conn.fetchrow(
                """INSERT INTO projection_rebuilds
                       (projection, shadow, fence_tx, fence_position, phase, total)
                   VALUES ($1, $2, $3::xid8, $4, $5, $6)
                   ON CONFLICT (projection) DO UPDATE SET
                       shadow = excluded.shadow, fence_tx = excluded.fence_tx,
                       fence_position = excluded.fence_position, phase = excluded.phase,
                       after_tx = '0', after_position = 0, events = 0,
                       total = excluded.total, started_at = now(), updated_at = now()
                   RETURNING *""",
                projection.name,
                self.shadow,
                fence.tx_id,
                fence.global_position,
                "streams" if by_stream else "log",
                expected,
            )
            await conn.execute(
                "DELETE FROM projection_rebuild_parts WHERE projection = $1", projection.name
            )
            if by_stream:
                await conn.executemany(
                    """INSERT INTO projection_rebuild_parts (projection, part, low, high)
                       VALUES ($1, $2, $3, $4)""",
                    [
                        (projection.name, n, low, high)
                        for n, (low, high) in enumerate(
                            zip([None, *cuts], [*cuts, None], strict=True)
                        )
                    ],
                )
        assert state is not None
        return state

    # -- by stream -----------------------------------------------------------------------

    async def by_parts(self, fence: Position) -> None:
        """The by-stream phase: every part not done yet, in `workers` processes."""
        parts = [
            Part(**dict(r))
            for r in await self.conn.fetch(
                """SELECT part, low, high, after_stream, events FROM projection_rebuild_parts
                   WHERE projection = $1 AND NOT done ORDER BY part""",
                self.projection.name,
            )
        ]
        if self.workers <= 1 or len(parts) <= 1 or not self.persist:
            for part in parts:
                await self.by_stream(fence, part)
            return
        self.peaks = await forking.share(
            parts,
            lambda part: self.by_stream(fence, part),
            lambda report: self._forked(fence, report),
            workers=self.workers - 1,
            on_report=self._reported,
        )

    @contextlib.asynccontextmanager
    async def _forked(
        self, fence: Position, report: forking.Report
    ) -> AsyncIterator[Callable[[Part], Awaitable[None]]]:
        """In a forked worker: this fold with connections of its own, telling the parent
        its progress and what it cannot read."""
        async with self.store.direct("rebuild") as conn, self.store.direct("rebuild") as reader:
            fold = dataclasses.replace(
                self,
                conn=conn,
                reader=reader,
                progress=report,
                unreadable=report if self.unreadable else None,
                workers=1,
            )
            with _fewer_collections():
                yield lambda part: fold.by_stream(fence, part)

    def _reported(self, value: int | RecordedEvent) -> None:
        """What a forked worker told: events folded, or one it could not read."""
        if isinstance(value, int):
            self._advance(value)
        elif self.unreadable is not None:
            try:
                self.unreadable(value)
            except Exception as exc:
                raise Abandon(exc) from exc

    async def by_stream(self, fence: Position, part: Part) -> None:
        """Fold every stream of `part` (after its `after_stream`) up to `fence` whole;
        COPY the rows in.

        A chunk's COPY runs while the next chunk is folded (one COPY at a time)."""
        record = _record_of(self.projection.columns)
        records: list[tuple[Any, ...]] = []
        stream: list[RecordedEvent] = []  # the events so far of the stream being read
        done = part.after_stream  # the last stream folded (its rows in `records` or copied)
        complete = part.events  # events of the part's streams up to `done`
        copying: asyncio.Task[None] | None = None
        pages = _stream_pages(self.store, self.reader, self.projection, fence, part)
        try:
            async for page in pages:
                fold = self._folder(page, record)
                carried = bool(stream)  # a stream the last page began: read it whole
                for stream_id, events in itertools.groupby(page, _STREAM_ID):
                    if stream and stream_id != stream[0].stream_id:
                        records.extend((self._folder(stream, record) if carried else fold)(stream))
                        carried = False
                        done, complete = stream[0].stream_id, complete + len(stream)
                        stream = list(events)
                    else:  # the stream the last page ended with goes on
                        stream.extend(events)
                if len(records) >= COPY_ROWS:
                    if copying is not None:
                        await copying
                    copying = asyncio.ensure_future(self._copy(records, part, done, complete))
                    records = []
                self._advance(len(page))
            if stream:
                records.extend(self._folder(stream, record)(stream))
                done, complete = stream[0].stream_id, complete + len(stream)
            if copying is not None:
                await copying
            await self._copy(records, part, done, complete, finished=True)
        finally:
            await pages.aclose()
            if copying is not None and not copying.done():
                copying.cancel()
                await asyncio.gather(copying, return_exceptions=True)

    def _folder(
        self, page: list[RecordedEvent], record: Callable[[Row], tuple[Any, ...]]
    ) -> Callable[[list[RecordedEvent]], list[tuple[Any, ...]]]:
        """What folds one stream of `page` into records to COPY. The pages hold only the
        projection's streams; a page with an event this code cannot read takes the path
        that tells `unreadable` about it (and skips it)."""
        fold_stream = self.projection.fold_stream
        lenient = any(type(e.data) is Undecodable for e in page)

        def fold(events: list[RecordedEvent]) -> list[tuple[Any, ...]]:
            readable = self._readable(events) if lenient else events
            try:
                rows = fold_stream(readable).values() if readable else ()
            except Exception as exc:
                raise FoldFailed(
                    self.projection.name, f"stream {events[0].stream_id}", exc
                ) from exc
            return [record(row) for row in rows if row is not None]

        return fold

    async def _copy(
        self,
        records: list[tuple[Any, ...]],
        part: Part,
        done: str | None,
        events: int,
        *,
        finished: bool = False,
    ) -> None:
        """COPY `records` in, recording that every stream of `part` up to `done` (`events`
        events in all) is in the shadow, and whether that is the whole part."""
        async with self.conn.transaction():
            if records:
                await self.conn.copy_records_to_table(
                    self.shadow, records=records, columns=self.projection.columns
                )
            if not self.persist:
                return
            name = self.projection.name
            await self.conn.execute(
                """UPDATE projection_rebuild_parts SET after_stream = $3, events = $4, done = $5
                   WHERE projection = $1 AND part = $2""",
                name,
                part.part,
                done,
                events,
                finished,
            )
            await self.conn.execute(  # last: other parts' workers update it too
                """UPDATE projection_rebuilds SET events = events + $2, updated_at = now()
                   WHERE projection = $1""",
                name,
                events - part.events,
            )
        part.after_stream, part.events = done, events

    # -- in log order --------------------------------------------------------------------

    async def in_log_order(self, position: Position) -> Position:
        """Apply the log after `position` to the shadow, batch by batch, with progress."""
        while batch := await self._read_after(position):
            async with self.conn.transaction():
                position = await self._apply(batch)
                if self.persist:
                    await self._save_progress(position)
            if len(batch) < self.batch_size:
                break  # caught up (the swap applies what arrives meanwhile)
        return position

    async def _read_after(self, position: Position) -> list[RecordedEvent]:
        """The next batch of the log after `position` (none past `until`)."""
        if self.until is not None and position >= self.until:
            return []
        rows = await self.reader.fetch(GLOBAL_LOG_SQL, position[0], position[1], self.batch_size)
        if self.until is not None:
            until = self.until
            rows = [r for r in rows if Position(r["tx_id"], r["global_position"]) <= until]
        return self.store.decode_rows(rows, self.projection.categories, lenient=True)

    async def _apply(self, batch: list[RecordedEvent]) -> Position:
        """Fold `batch` into the rows it touches in the shadow (loaded, then upserted)."""
        projection = self.projection
        mine = self._readable(batch)
        try:
            keys = {k for e in mine if (k := projection.key_of(e)) is not None}
        except Exception as exc:
            raise FoldFailed(projection.name, _span(batch), exc) from exc
        if keys:
            state = await load_rows(self.conn, projection, self.shadow, list(keys))
            try:
                changed = projection.fold(state, mine)
            except Exception as exc:
                raise FoldFailed(projection.name, _span(batch), exc) from exc
            await write_rows(self.conn, projection, self.shadow, state, changed)
        self._advance(len(mine))
        return batch[-1].position

    async def _save_progress(self, position: Position) -> None:
        await self.conn.execute(
            """UPDATE projection_rebuilds SET phase = 'log', after_tx = $2::xid8,
                   after_position = $3, events = $4, updated_at = now()
               WHERE projection = $1""",
            self.projection.name,
            position.tx_id,
            position.global_position,
            self.events,
        )

    # -- the end -------------------------------------------------------------------------

    async def _swap(self, position: Position) -> Position:
        """ANALYZE, then under the checkpoint lock: the last events, the swap, the names."""
        projection, conn, table = self.projection, self.conn, self.projection.table
        await analyze(conn, self.shadow)
        async with conn.transaction():
            await checkpoints.lock(conn, projection.name)
            while batch := await self._read_after(position):
                position = await self._apply(batch)
            renames = await _renames(conn, table)
            await conn.execute(f"DROP TABLE {table}; ALTER TABLE {self.shadow} RENAME TO {table}")
            for statement in renames:
                await conn.execute(statement)
            await checkpoints.save(conn, projection.name, position, version=projection.version)
            await conn.execute(
                "DELETE FROM projection_rebuilds WHERE projection = $1", projection.name
            )
        return position

    async def _discard(self) -> None:
        async with self.conn.transaction():
            await self.conn.execute(f"DROP TABLE IF EXISTS {self.shadow}")
            await self.conn.execute(
                "DELETE FROM projection_rebuilds WHERE projection = $1", self.projection.name
            )

    # -- helpers -------------------------------------------------------------------------

    def _readable(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The events of the projection's streams this code can read; the others are told
        to `unreadable` (which may raise to stop the rebuild), dropped ones skipped."""
        categories = _streams_of(self.projection)
        if categories is not None:
            events = [e for e in events if e.category in categories]
        if not any(isinstance(e.data, Undecodable | Dropped) for e in events):
            return events
        readable = []
        for event in events:
            if isinstance(event.data, Undecodable):
                if self.unreadable is not None:
                    try:
                        self.unreadable(event)
                    except Exception as exc:
                        raise Abandon(exc) from exc
            elif not isinstance(event.data, Dropped):
                readable.append(event)
        return readable

    def _advance(self, n: int) -> None:
        self.events += n
        if self.progress is not None and n:
            self.progress(n)


_STREAM_ID = operator.attrgetter("stream_id")


async def _side_by_side(*work: Awaitable[Any]) -> list[Any]:
    """The results of `work`, run side by side (each on its own connection); the first
    error comes out once every piece has ended, so none is left using a connection."""
    outcomes = await asyncio.gather(*work, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def _record_of(columns: tuple[str, ...]) -> Callable[[Row], tuple[Any, ...]]:
    """A row's values in `columns` order, as COPY takes them."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return operator.itemgetter(*columns)


def _span(batch: list[RecordedEvent]) -> str:
    return f"the events from {batch[0].position} to {batch[-1].position}"


def shadow_of(projection: Projection) -> str:
    """The table a rebuild of `projection` writes beside the live one."""
    return f"{projection.table}__rebuild"


# -- reading stream by stream ------------------------------------------------------------


def _streams_of(projection: Projection) -> frozenset[str] | None:
    """The categories whose streams make the projection's rows (None: every stream).

    Those of `categories`, or every stream's for a model that decodes no event data
    (`categories` empty: it reads the envelope of every event).
    """
    return projection.categories or None


_LAST_VERSION = 2**31 - 1


@dataclasses.dataclass(frozen=True, slots=True)
class _Scan:
    """A range of the `(stream_id, stream_version)` index to read: from `low`, below
    `high` (None: to the end), only streams matching one of `patterns` (None: all).
    `ordered`: one of several ranges of a database that sorts text bytewise, whose bounds
    Python compares as the database does (else the only scan: nothing to compare)."""

    low: str
    high: str | None
    patterns: list[str] | None
    ordered: bool = False

    def bounds(self, first: int) -> tuple[list[str], list[Any]]:
        """SQL conditions on `stream_id` beyond `low`, numbering parameters from `first`."""
        where: list[str] = []
        args: list[Any] = []
        if self.high is not None:
            args.append(self.high)
            where.append(f"stream_id < ${first + len(args) - 1}")
        if self.patterns is not None:
            args.append(self.patterns)
            where.append(f"stream_id LIKE ANY(${first + len(args) - 1}::text[])")
        return where, args

    def page(self, columns: str = COLUMNS) -> tuple[str, list[Any]]:
        """The query for a page after `($1, $2)`, up to the fence `($3, $4)`, `$5` rows."""
        where, args = self.bounds(6)
        where[:0] = [
            "(stream_id, stream_version) > ($1, $2::int)",
            "(tx_id, global_position) <= ($3::xid8, $4::bigint)",
        ]
        sql = (
            f"SELECT {columns} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY stream_id, stream_version LIMIT $5"
        )
        return sql, args


async def _scans(conn: Conn, categories: Collection[str] | None) -> list[_Scan]:
    """How to read the streams of `categories` in index order: one tight range per
    category where the database sorts text bytewise (C collation), else one pass
    filtering by prefix (a range bound would be wrong under a linguistic collation)."""
    if categories is None:
        return [_Scan("", None, None)]
    if await sorts_bytewise(conn):
        return [_Scan(*prefix_range(f"{c}-"), None, ordered=True) for c in sorted(categories)]
    return [_Scan("", None, [like_prefix(f"{c}-") for c in sorted(categories)])]


def _within(scans: list[_Scan], low: str | None, high: str | None) -> list[_Scan]:
    """`scans` narrowed to the stream ids from `low` below `high` (None: unbounded).

    Bounds are compared here only for the scans of a bytewise-sorting database (the only
    ones with bounds of their own): Python orders strings as such a database does."""
    narrowed = []
    for scan in scans:
        if not scan.ordered:  # the only scan: the part's bounds are all there is
            narrowed.append(dataclasses.replace(scan, low=low or "", high=high))
            continue
        start = scan.low if low is None else max(scan.low, low)
        ends = [end for end in (scan.high, high) if end is not None]
        end = min(ends) if ends else None
        if end is None or start < end:
            narrowed.append(dataclasses.replace(scan, low=start, high=end))
    return narrowed


async def _cuts(conn: Conn, projection: Projection, parts: int) -> list[str]:
    """Stream ids cutting the projection's streams into `parts` ranges of about as many
    events each (fewer when there are few streams): each range starts at a cut.

    From the planner's statistics of `events.stream_id` when they hold enough bounds
    among the projection's streams (equal-frequency bounds: a cut costs nothing, and
    ranges of about as many events are all that is needed); else by counting."""
    if parts <= 1:
        return []
    categories = _streams_of(projection)
    estimated = await _estimated_cuts(conn, categories, parts)
    if estimated is not None:
        return estimated
    scans = await _scans(conn, categories)
    counts = []
    for scan in scans:
        where, args = scan.bounds(2)
        counts.append(
            await conn.fetchval(
                f"SELECT count(*) FROM events WHERE {' AND '.join(['stream_id >= $1', *where])}",
                scan.low,
                *args,
            )
        )
    total = sum(counts)
    targets = [total * k // parts for k in range(1, parts)]
    cuts: list[str] = []
    before = 0  # events of the scans before this one
    for scan, count in zip(scans, counts, strict=True):
        start, skipped = (scan.low, 0), 0  # each search goes on from the last cut
        where, args = scan.bounds(4)
        sql = (
            "SELECT stream_id, stream_version FROM events WHERE "
            + " AND ".join(["(stream_id, stream_version) >= ($1, $2::int)", *where])
            + " ORDER BY stream_id, stream_version OFFSET $3 LIMIT 1"
        )
        for target in (t for t in targets if before <= t < before + count):
            found = await conn.fetchrow(sql, *start, target - before - skipped, *args)
            if found is None:  # the log changed meanwhile
                break
            if not cuts or found["stream_id"] != cuts[-1]:
                cuts.append(found["stream_id"])
            start, skipped = (found["stream_id"], found["stream_version"]), target - before
        before += count
    return cuts


async def _estimated_cuts(
    conn: Conn, categories: Collection[str] | None, parts: int
) -> list[str] | None:
    """Cuts among the histogram bounds of `events.stream_id` in `categories` (None when
    there are too few: no statistics yet, or these streams too few among the log's; or
    when some of them are among the most common values, which the histogram leaves out:
    long streams would make its ranges uneven)."""
    stats = await conn.fetchrow(
        """SELECT histogram_bounds::text::text[] AS bounds, null_frac,
                  most_common_vals::text::text[] AS common, most_common_freqs AS freqs
           FROM pg_stats
           WHERE schemaname = current_schema() AND tablename = 'events'
             AND attname = 'stream_id'"""
    )
    if stats is None or not stats["bounds"]:
        return None

    def ours(stream_id: str) -> bool:
        return categories is None or category_of(stream_id) in categories

    bounds = stats["bounds"]
    common = list(zip(stats["common"] or (), stats["freqs"] or (), strict=True))
    inside = [b for b in bounds if ours(b)]
    in_histogram = (1 - stats["null_frac"] - sum(f for _, f in common)) * len(inside) / len(bounds)
    in_common = sum(f for v, f in common if ours(v))
    if len(inside) < 2 * parts or in_common > 0.1 * (in_common + in_histogram):
        return None  # the statistics say too little about these streams
    cuts: list[str] = []
    for k in range(1, parts):
        cut = inside[len(inside) * k // parts]
        if not cuts or cut != cuts[-1]:
            cuts.append(cut)
    return cuts


async def _stream_pages(
    store: PostgresEventStore,
    conn: Conn,
    projection: Projection,
    fence: Position,
    part: Part,
) -> AsyncGenerator[list[RecordedEvent], None]:
    """The events up to `fence` of the streams of `part` after its `after_stream`, in
    `(stream_id, stream_version)` order, a page at a time; the query for the next page
    goes out before this one is handed over, so Postgres reads while the caller folds."""
    pending: asyncio.Future[list[asyncpg.Record]] | None = None
    after_stream = part.after_stream
    try:
        columns = COLUMNS if projection.reads_metadata else COLUMNS_WITHOUT_METADATA
        # every event read is of the model's categories: none to tell apart, unless the
        # model decodes no event's data at all (`categories` empty: none is even sent)
        decoded: frozenset[str] | None = None
        if projection.categories == frozenset():
            columns, decoded = columns.replace("data::text", "NULL::text"), frozenset()
        scans = _within(await _scans(conn, _streams_of(projection)), part.low, part.high)
        for scan in scans:
            sql, extra = scan.page(columns)
            if after_stream is not None and (not scan.ordered or after_stream >= scan.low):
                start = (after_stream, _LAST_VERSION)  # every stream after that one
            else:
                start = (scan.low, 0)
            args = (fence.tx_id, fence.global_position, PAGE_SIZE, *extra)
            rows = await conn.fetch(sql, *start, *args)
            while rows:
                if len(rows) == PAGE_SIZE:
                    last = rows[-1]
                    pending = asyncio.ensure_future(conn.fetch(sql, last[2], last[3], *args))
                    await asyncio.sleep(0)  # let the query go out
                yield store.decode_rows(rows, decoded, lenient=True)
                if pending is None:
                    break
                rows, pending = await pending, None
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def count_events(conn: Conn, projection: Projection) -> int:
    """Events of the projection's categories in the log (what a rebuild will fold)."""
    clauses, args = [], []
    for scan in await _scans(conn, _streams_of(projection)):
        args.append(scan.low)
        where, more = scan.bounds(len(args) + 1)
        clauses.append(" AND ".join([f"stream_id >= ${len(args)}", *where]))
        args.extend(more)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM events WHERE {' OR '.join(f'({c})' for c in clauses)}", *args
    )
    return count


# -- indexes and their names -------------------------------------------------------------

_INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (\S+) ")


def _temporary(name: str) -> str:
    """The name an index or key constraint has on the shadow until the swap."""
    return f"{name[:50]}__rebuild"


async def indexes_of(conn: Executor, table: str) -> list[asyncpg.Record]:
    """The indexes of `table`: name, definition and the key constraint each one backs."""
    return await conn.fetch(
        """SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition,
                  c.conname AS constraint_name, c.contype::text AS constraint_type
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
           WHERE x.indrelid = $1::regclass
           ORDER BY i.relname""",
        table,
    )


async def _build_indexes(conns: Sequence[Conn], table: str, shadow: str) -> None:
    """`table`'s indexes on `shadow`, under temporary names: those it has not got yet (a
    resumed rebuild may have built some), side by side on `conns` (an index of a large
    table takes a while, and a build uses one core)."""
    built = {index["name"] for index in await indexes_of(conns[0], shadow)}
    pending = [i for i in await indexes_of(conns[0], table) if _temporary(i["name"]) not in built]

    async def build(conn: Conn) -> None:
        while pending:
            index = pending.pop(0)
            unique = "UNIQUE " if index["definition"].startswith("CREATE UNIQUE") else ""
            await conn.execute(
                _INDEX_DEF.sub(
                    f"CREATE {unique}INDEX {_temporary(index['name'])} ON {shadow} ",
                    index["definition"],
                    count=1,
                )
            )

    await _side_by_side(*map(build, conns))


async def _add_key_constraints(conn: Conn, table: str, shadow: str) -> None:
    """`table`'s primary key and unique constraints on `shadow`, on its indexes built by
    `_build_indexes` (those it has not got yet)."""
    have = {
        r[0]
        for r in await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass", shadow
        )
    }
    for index in await indexes_of(conn, table):
        temporary = _temporary(index["name"])
        kind = {"p": "PRIMARY KEY", "u": "UNIQUE"}.get(index["constraint_type"] or "")
        if kind is not None and temporary not in have:
            await conn.execute(
                f"ALTER TABLE {shadow} ADD CONSTRAINT {temporary} {kind} USING INDEX {temporary}"
            )


async def analyze(conn: Conn, table: str) -> None:
    """Statistics of the columns `table`'s indexes cover, what the planner needs before
    the first query (autovacuum gathers the rest later; all of them when an index is on
    an expression or partial). ANALYZE of a read model's JSON columns costs more than
    the rest of the table together, for statistics no query uses."""
    columns = await conn.fetchval(
        """SELECT string_agg(DISTINCT quote_ident(a.attname), ', ')
           FROM pg_index x
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey::int2[])
           WHERE x.indrelid = $1::regclass AND a.attnum > 0
             AND NOT EXISTS (SELECT FROM pg_index e WHERE e.indrelid = x.indrelid
                             AND (e.indexprs IS NOT NULL OR e.indpred IS NOT NULL))""",
        table,
    )  # an index on an expression or with a predicate: all of it (its statistics too)
    await conn.execute(f"ANALYZE {table}" + (f" ({columns})" if columns else ""))


async def _renames(conn: Conn, table: str) -> list[str]:
    """What gives the swapped-in shadow the live table's index and constraint names (to
    run once the live `table` is dropped and the shadow renamed to it)."""
    statements = []
    for index in await indexes_of(conn, table):
        temporary = _temporary(index["name"])
        if index["constraint_type"] in ("p", "u"):
            statements.append(
                f"ALTER TABLE {table} RENAME CONSTRAINT {temporary} TO {index['constraint_name']}"
            )
        else:
            statements.append(f"ALTER INDEX {temporary} RENAME TO {index['name']}")
    return statements

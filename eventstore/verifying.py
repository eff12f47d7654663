"""Verifying a read model against the log: drift found, and repaired row by row.

A verify folds the log up to the projection's checkpoint exactly as a rebuild does (stream
by stream, or in log order), in bounded memory, into a temporary table, and compares it in
SQL with the live table as it was at that checkpoint. One repeatable-read, read-only
transaction reads the checkpoint, the log and the live table, so a runner that keeps
applying meanwhile causes no false differences (it commits rows and checkpoint together),
and, holding no transaction id, it holds back no reader of the log. The temporary tables
are written by a second connection in short transactions and vanish with its session.

`fix=True` repairs only the differing rows: under the checkpoint lock (a live runner
pauses for just this), the events the runner applied since the snapshot are folded into
the log's table too, the differing keys compared again with the live table, and each that
still differs replaced by the log's row (or deleted, when the log has none).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from . import checkpoints
from .events import START, Position, RecordedEvent, Undecodable
from .pg import Conn
from .projection import Projection, Row
from .rebuilding import COPY_ROWS, Abandon, Fold, Part, count_events
from .store import COLUMNS, PostgresEventStore, like_prefix

__all__ = ["Difference", "Sample", "Verification", "sample", "verify"]

SHOWN = 1000
"""Differences a verify returns in full (all of them are counted)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """One key whose row in the table is not what the log folds to."""

    key: Any
    table: Row | None  # the row in the read model (None: missing there)
    log: Row | None  # the row the log folds to (None: the log has none)

    @property
    def columns(self) -> list[str]:
        """The columns that differ (every column when one side has no row)."""
        if self.table is None or self.log is None:
            return list((self.table or self.log or {}).keys())
        return [c for c in self.log if self.log[c] != self.table.get(c)]


@dataclasses.dataclass(frozen=True, slots=True)
class Verification:
    events: int  # events of the projection folded
    rows: int  # rows the log folds to
    position: Position  # the checkpoint the table was compared at
    differing: int  # keys that differ
    differences: list[Difference]  # the first `SHOWN` of them
    repaired: list[Any] = dataclasses.field(default_factory=list)  # keys fixed (fix=True)

    @property
    def ok(self) -> bool:
        return self.differing == 0


async def verify(
    store: PostgresEventStore,
    projection: Projection,
    *,
    fix: bool = False,
    progress: Callable[[int], None] | None = None,
    expect: Callable[[int], None] | None = None,
    unreadable: Callable[[RecordedEvent], None] | None = None,
    batch_size: int = 5000,
) -> Verification:
    """Compare `projection`'s table with the fold of the log up to its checkpoint.

    `progress(n)` after every n events folded, `expect(n)` once with about how many there
    are. An event this code cannot read is left out and told to `unreadable` (which may
    raise to stop). With `fix`, the differing rows are repaired (and listed in
    `repaired`); the rest of the table is not touched.
    """
    expected, seen = _names(projection)
    async with store.dedicated() as snapshot, store.dedicated() as conn:
        fold = Fold(
            store, projection, conn, snapshot, progress, batch_size, unreadable, shadow=expected
        )
        try:
            await _create(conn, projection, expected, seen)
            async with snapshot.transaction(isolation="repeatable_read", readonly=True):
                position = await checkpoints.load(snapshot, projection.name)
                if expect is not None:
                    expect(await count_events(snapshot, projection))
                if projection.keyed_by_stream:
                    await fold.by_stream(position, Part(0, None, None))
                else:
                    fold.until = position
                    await fold.in_log_order(START)
                await _copy_table(snapshot, conn, projection, seen)
            differing, differences = await _differences(conn, projection, expected, seen)
            rows: int = await conn.fetchval(f"SELECT count(*) FROM {expected}")
            repaired: list[Any] = []
            if fix and differing:
                candidates = [d.key for d in differences]
                if differing > len(differences):  # not all listed: find them all
                    candidates = await _differing_keys(conn, projection, expected, seen)
                fold.reader = conn
                repaired = await _repair(fold, position, candidates)
        except Abandon as exc:
            raise exc.error from None
        finally:
            await conn.execute(f"DROP TABLE IF EXISTS {expected}, {seen}")
    return Verification(fold.events, rows, position, differing, differences, repaired)


def _names(projection: Projection) -> tuple[str, str]:
    """The temporary tables of a verify: the log's rows, and the table's as compared."""
    return f"verify_{projection.table}"[:55], f"verify_{projection.table}"[:50] + "_seen"


async def _create(conn: Conn, projection: Projection, expected: str, seen: str) -> None:
    """Temporary tables (gone with the session, whatever happens): written in short
    transactions of their own, so a long verify holds back no reader of the log."""
    like = f"(LIKE {projection.table} INCLUDING DEFAULTS)"
    await conn.execute(
        f"DROP TABLE IF EXISTS {expected}, {seen}; "
        f"CREATE TEMPORARY TABLE {expected} {like}; "
        f"ALTER TABLE {expected} ADD PRIMARY KEY ({projection.key}); "
        f"CREATE TEMPORARY TABLE {seen} {like}"
    )


async def _copy_table(snapshot: Conn, conn: Conn, projection: Projection, seen: str) -> None:
    """The live table as `snapshot` sees it, into `seen`, a page at a time."""
    key, columns = projection.key, ", ".join(projection.columns)
    sql = f"SELECT {columns} FROM {projection.table} {{}} ORDER BY {key} LIMIT {COPY_ROWS}"
    rows = await snapshot.fetch(sql.format(""))
    while rows:
        await conn.copy_records_to_table(
            seen, records=[tuple(r) for r in rows], columns=projection.columns
        )
        if len(rows) < COPY_ROWS:
            break
        rows = await snapshot.fetch(sql.format(f"WHERE {key} > $1"), rows[-1][key])
    await conn.execute(f"ANALYZE {seen}")


def _comparison(projection: Projection, expected: str, table: str, *, among: bool = False) -> str:
    """FROM and WHERE of the keys whose rows differ between `table` and `expected`
    (`among`: only those in the array `$1`)."""
    key = projection.key

    def side(alias: str) -> str:
        return f"ROW({', '.join(f'{alias}.{c}' for c in projection.columns)})"

    return (
        f"FROM {expected} e FULL JOIN {table} t ON t.{key} = e.{key} "
        f"WHERE {side('e')} IS DISTINCT FROM {side('t')}"
        + (f" AND coalesce(e.{key}, t.{key}) = ANY($1)" if among else "")
    )


async def _differing_keys(
    conn: Conn, projection: Projection, expected: str, table: str, among: list[Any] | None = None
) -> list[Any]:
    key = projection.key
    comparison = _comparison(projection, expected, table, among=among is not None)
    args = [] if among is None else [among]
    return [
        r[0] for r in await conn.fetch(f"SELECT coalesce(e.{key}, t.{key}) {comparison}", *args)
    ]


async def _differences(
    conn: Conn, projection: Projection, expected: str, seen: str
) -> tuple[int, list[Difference]]:
    """How many keys differ, and the first `SHOWN` of them with both rows."""
    key = projection.key
    columns = ", ".join(projection.columns)
    total: int = await conn.fetchval("SELECT count(*) " + _comparison(projection, expected, seen))
    if not total:
        return 0, []
    keys = [
        r[0]
        for r in await conn.fetch(
            f"SELECT coalesce(e.{key}, t.{key}) AS k "
            + _comparison(projection, expected, seen)
            + f" ORDER BY k LIMIT {SHOWN}"
        )
    ]
    table = {
        r[key]: dict(r)
        for r in await conn.fetch(f"SELECT {columns} FROM {seen} WHERE {key} = ANY($1)", keys)
    }
    log = {
        r[key]: dict(r)
        for r in await conn.fetch(f"SELECT {columns} FROM {expected} WHERE {key} = ANY($1)", keys)
    }
    return total, [Difference(k, table.get(k), log.get(k)) for k in keys]


async def _repair(fold: Fold, snapshot: Position, candidates: list[Any]) -> list[Any]:
    """Replace the rows of `candidates` that still differ with the log's, under the
    checkpoint lock, after folding what the runner applied since `snapshot`."""
    conn, projection = fold.conn, fold.projection
    key = projection.key
    columns = ", ".join(projection.columns)
    async with conn.transaction():
        now = await checkpoints.lock(conn, projection.name)
        if now > snapshot:  # the runner went on: bring the log's rows to its position
            fold.until = now
            await fold.in_log_order(snapshot)
        keys = await _differing_keys(conn, projection, fold.shadow, projection.table, candidates)
        if keys:
            await conn.execute(f"DELETE FROM {projection.table} WHERE {key} = ANY($1)", keys)
            await conn.execute(
                f"INSERT INTO {projection.table} ({columns}) "
                f"SELECT {columns} FROM {fold.shadow} WHERE {key} = ANY($1)",
                keys,
            )
    return sorted(keys, key=str)


# -- sampling --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """A few streams of a read model folded and compared with their rows."""

    streams: int  # streams folded
    rows: int  # rows they make, compared
    differing: list[Any]  # keys whose row is not what their stream folds to


async def sample(
    store: PostgresEventStore,
    projection: Projection,
    streams: int = 20,
    *,
    among: tuple[int, int] | None = None,
) -> Sample:
    """Fold `streams` streams of `projection` picked at random from the log (up to its
    checkpoint) and compare the rows they make with the table's, as of that checkpoint.

    Cheap enough to run every minute beside a live runner (one snapshot, a few indexed
    reads): what `projections verify` does for the whole table, by sample. `among`:
    the range of global positions to pick from (default: the whole log). For a
    projection `keyed_by_stream` only (one row comes from one stream); rows are compared
    as the driver reads them.
    """
    if not projection.keyed_by_stream:
        raise ValueError(f"{projection.name} is not keyed by stream: verify it whole")
    columns = projection.columns
    categories = sorted(projection.categories or ())
    where = "stream_id LIKE ANY($2::text[])" if categories else "TRUE"
    patterns = [like_prefix(f"{c}-") for c in categories]
    async with (
        store.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        position = await checkpoints.load(conn, projection.name)
        last = position.global_position
        if last == 0:
            return Sample(0, 0, [])
        low, high = among or (1, last)
        points = range(max(low, 1), min(high, last) + 1)
        picked: set[str] = set()
        for point in random.sample(points, min(streams, len(points))):
            found = await conn.fetchval(
                f"SELECT stream_id FROM events WHERE global_position >= $1 AND {where}"
                " ORDER BY global_position LIMIT 1",
                point,
                *([patterns] if categories else []),
            )
            if found is not None:
                picked.add(found)
        expected: dict[Any, Row | None] = {}
        for stream in sorted(picked):
            rows = await conn.fetch(_STREAM_UP_TO, stream, position.tx_id, last)
            events = store.decode_rows(rows, projection.categories, lenient=True)
            readable = [e for e in events if not isinstance(e.data, Undecodable)]
            expected.update(projection.fold_stream(readable))
        keys = list(expected)
        table = {
            r[projection.key]: dict(r)
            for r in await conn.fetch(
                f"SELECT {', '.join(columns)} FROM {projection.table}"
                f" WHERE {projection.key} = ANY($1)",
                keys,
            )
        }
    differing = [
        key
        for key, row in expected.items()
        if (None if row is None else {c: row[c] for c in columns}) != table.get(key)
    ]
    return Sample(len(picked), len(keys), differing)


_STREAM_UP_TO = (
    f"SELECT {COLUMNS} FROM events WHERE stream_id = $1"
    " AND (tx_id, global_position) <= ($2::xid8, $3::bigint) ORDER BY stream_version"
)

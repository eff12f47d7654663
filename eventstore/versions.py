"""Versioned read models: the next version built beside the live one, then promoted.

A projection's `version` is that of the rows its code writes; the checkpoint of its
name records the version of the live table's rows. When the code's is higher, the code
works in two parts until an operator promotes:

- the *next* table, `<table>__v<N>` (created from the projection's `ddl`), is built from
  the log by a streaming rebuild and then kept up to date by a runner of its own, under
  checkpoint `<name>@v<N>` (`next_version`);
- the live table keeps serving every reader, kept up to date by this code with the
  columns both versions have (`keeping`).

`promote` then swaps the next table in, in one transaction, under both checkpoint locks
(readers wait for the commit, none fails): the events since the next table's checkpoint
are applied to it, the live table is dropped, the next one renamed to the live name with
its indexes and constraints (`<table>__v<N>_by_user` becomes `<table>_by_user`), and the
checkpoint moved to it at version N. A runner still writing the old version then finds the
checkpoint at another version (`checkpoints.VersionChanged`) and stops.
"""

from __future__ import annotations

import dataclasses

from . import checkpoints
from .errors import RebuildInProgress
from .events import Position
from .pg import Conn, Executor
from .projection import Projection
from .rebuilding import Fold, analyze, indexes_of, rebuild
from .store import PostgresEventStore

__all__ = [
    "NotBuilt",
    "Promotion",
    "build_next",
    "is_built",
    "keeping",
    "live_columns",
    "next_version",
    "promote",
]


class NotBuilt(Exception):
    """There is no next version to promote (none in this code, or not built yet)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Promotion:
    projection: str
    version: int  # now live
    retired: int  # the version whose table was dropped
    rows: int
    position: Position


def next_version(projection: Projection) -> Projection:
    """`projection` writing its next table under a checkpoint of its own (for a version
    above the live one; the fold is the same)."""
    version = projection.version
    cls = type(projection)
    attributes = {
        "name": f"{projection.name}@v{version}",
        "table": f"{projection.table}__v{version}",
        "__module__": cls.__module__,
        "__doc__": f"{cls.__name__}, version {version}, building beside the live table.",
    }
    derived: Projection = type(f"{cls.__name__}V{version}", (cls,), attributes)()
    return derived


def keeping(projection: Projection, columns: set[str], version: int) -> Projection:
    """`projection` writing the live table of an older `version`, whose `columns` it
    shares: what keeps that table serving until the next version is promoted."""
    cls = type(projection)
    attributes = {
        "columns": tuple(c for c in projection.columns if c in columns),
        "version": version,
        "__module__": cls.__module__,
        "__doc__": f"{cls.__name__} keeping the version {version} table up to date.",
    }
    derived: Projection = type(f"{cls.__name__}KeepingV{version}", (cls,), attributes)()
    return derived


async def live_columns(executor: Executor, table: str) -> set[str]:
    rows = await executor.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
        " AND attnum > 0 AND NOT attisdropped",
        table,
    )
    return {r[0] for r in rows}


async def is_built(executor: Executor, projection: Projection) -> bool:
    """Whether the next version of `projection` is built (and followed) beside the live one."""
    following = next_version(projection)
    return await checkpoints.stored_version(executor, following.name) == following.version


async def build_next(store: PostgresEventStore, projection: Projection) -> Projection:
    """Make sure the next version's table exists and is built (creating it from `ddl`,
    then a streaming, resumable rebuild into it); return the projection writing it.
    Raises `RebuildInProgress` while another process builds it."""
    if not projection.ddl:
        raise NotBuilt(f"{projection.name} version {projection.version} has no ddl to build")
    following = next_version(projection)
    async with store.pool.acquire() as conn, conn.transaction():
        # one creator at a time: the lock a rebuild of the next version takes, held here
        # for the transaction only
        if not await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('microshop:rebuild:' || $1, 0))",
            following.name,
        ):
            raise RebuildInProgress(following.name)
        if await conn.fetchval("SELECT to_regclass($1)", following.table) is None:
            await conn.execute(projection.ddl.format(table=following.table))
    if not await is_built(store.pool, projection):
        await rebuild(store, following, resume=True)
    return following


async def promote(store: PostgresEventStore, projection: Projection) -> Promotion:
    """Swap the built next version of `projection` in for the live table (see above)."""
    following = next_version(projection)
    async with store.dedicated() as conn, store.dedicated() as reader:
        live = await checkpoints.version_of(conn, projection.name)
        if projection.version <= live:
            raise NotBuilt(
                f"{projection.name} is at version {live} already; this code has version "
                f"{projection.version}"
            )
        built = await is_built(conn, projection)
        if not built or await conn.fetchval("SELECT to_regclass($1)", following.table) is None:
            raise NotBuilt(
                f"version {projection.version} of {projection.name} is not built yet: run "
                f"the service with this code, or `microshop projections rebuild "
                f"{projection.name}`"
            )
        await analyze(conn, following.table)
        fold = Fold(store, following, conn, reader, None, 5000, None, shadow=following.table)
        fold.persist = False
        async with conn.transaction():
            await checkpoints.lock(conn, projection.name, version=live)
            position = await checkpoints.lock(conn, following.name, version=following.version)
            position = await fold.in_log_order(position)  # up to the fence, runners paused
            renames = await _renames(conn, following.table, projection.table)
            await conn.execute(
                f"DROP TABLE {projection.table}; "
                f"ALTER TABLE {following.table} RENAME TO {projection.table}"
            )
            for statement in renames:
                await conn.execute(statement)
            await checkpoints.save(conn, projection.name, position, version=projection.version)
            await conn.execute("DELETE FROM checkpoints WHERE name = $1", following.name)
            rows: int = await conn.fetchval(f"SELECT count(*) FROM {projection.table}")
    return Promotion(projection.name, projection.version, live, rows, position)


async def _renames(conn: Conn, table: str, live: str) -> list[str]:
    """What gives `table`'s indexes and constraints the live names once it is renamed to
    `live`: each name starting with `table` starts with `live` instead."""
    statements = []
    for index in await indexes_of(conn, table):
        name = index["constraint_name"] or index["name"]
        if not name.startswith(table):
            continue
        renamed = live + name[len(table) :]
        if index["constraint_name"]:
            statements.append(f"ALTER TABLE {live} RENAME CONSTRAINT {name} TO {renamed}")
        else:
            statements.append(f"ALTER INDEX {name} RENAME TO {renamed}")
    for constraint in await conn.fetch(  # CHECK and foreign keys: no index of their own
        "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('c', 'f')",
        table,
    ):
        name = constraint["conname"]
        if name.startswith(table):
            renamed = live + name[len(table) :]
            statements.append(f"ALTER TABLE {live} RENAME CONSTRAINT {name} TO {renamed}")
    return statements

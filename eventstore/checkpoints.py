"""Checkpoints of global-log readers: one `(tx_id, global_position)` row per reader name."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from .events import START, Position
from .pg import RELAXED, Conn, Executor

__all__ = [
    "FenceHolder",
    "Lag",
    "VersionChanged",
    "advance",
    "held_back",
    "lag",
    "load",
    "lock",
    "save",
    "stored_version",
    "version_of",
]


async def load(executor: Executor, name: str) -> Position:
    """The stored checkpoint of `name` (`START` when it has none)."""
    row = await executor.fetchrow("SELECT tx_id, position FROM checkpoints WHERE name = $1", name)
    return START if row is None else Position(row[0], row[1])


# The no-op update locks the row (created if missing, at version 1: a later version's rows
# come only from a rebuild or a promote, which set it) and returns what it holds: one trip.
_LOCK = """
INSERT INTO checkpoints (name) VALUES ($1)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING tx_id, position, version"""
# `set_config(..., true)` is local to the transaction: its commit does not wait for the WAL
# flush. A crash may then forget the last such commits, whole: rows and checkpoint together.
_RELAX = "set_config('synchronous_commit', 'off', true)"
_LOCK_ASYNC_COMMIT = _LOCK + ", " + _RELAX
_SAVE = """
INSERT INTO checkpoints (name, tx_id, position, updated_at)
VALUES ($1, $2::xid8, $3, now())
ON CONFLICT (name) DO UPDATE
SET tx_id = excluded.tx_id, position = excluded.position, updated_at = now()"""
_SAVE_VERSION = """
INSERT INTO checkpoints (name, tx_id, position, version, updated_at)
VALUES ($1, $2::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE
SET tx_id = excluded.tx_id, position = excluded.position, version = excluded.version,
    updated_at = now()"""
_SAVE_ASYNC_COMMIT = f"""
{RELAXED}
INSERT INTO checkpoints (name, tx_id, position, updated_at)
SELECT $1, $2::xid8, $3, now() FROM relaxed
ON CONFLICT (name) DO UPDATE
SET tx_id = excluded.tx_id, position = excluded.position, updated_at = now()"""


# Moves the checkpoint only from where the writer last saw it (and at its version), locking
# the row: the usual batch needs no separate lock and save. `set_config(..., true)`: as in
# `_LOCK_ASYNC_COMMIT`.
_ADVANCE = """
UPDATE checkpoints SET tx_id = $4::xid8, position = $5, updated_at = now()
WHERE name = $1 AND tx_id = $2::xid8 AND position = $3 AND version = $6
RETURNING true"""
_ADVANCE_ASYNC_COMMIT = _ADVANCE.replace("RETURNING true", "RETURNING " + _RELAX)


class VersionChanged(Exception):
    """The read model's checkpoint stands for rows of another version than the writer's:
    a promote swapped another version's table in (the writer must stop writing)."""

    def __init__(self, name: str, stored: int, writer: int) -> None:
        super().__init__(
            f"{name} holds version {stored} rows now, this writer writes version {writer}"
        )
        self.name, self.stored, self.writer = name, stored, writer


async def lock(
    conn: Conn, name: str, *, synchronous_commit: bool = True, version: int | None = None
) -> Position:
    """Inside a transaction: the checkpoint of `name`, its row locked until commit.

    Whoever moves this checkpoint (a runner's batch, a rebuild's swap) holds this lock, so
    two writers of one read model never interleave. `synchronous_commit=False` lets the
    transaction commit without waiting for the disk: right for a read model, whose rows and
    checkpoint are lost (and re-applied) together, never one without the other. `version`:
    the version of the rows the caller writes; `VersionChanged` if the checkpoint stands
    for another (a new checkpoint stands for version 1).
    """
    sql = _LOCK if synchronous_commit else _LOCK_ASYNC_COMMIT
    row: Any = await conn.fetchrow(sql, name)
    if version is not None and row[2] != version:
        raise VersionChanged(name, row[2], version)
    return Position(row[0], row[1])


async def advance(
    conn: Conn,
    name: str,
    seen: Position,
    to: Position,
    *,
    version: int = 1,
    synchronous_commit: bool = True,
) -> bool:
    """Inside a transaction: move the checkpoint of `name` from `seen` to `to`, its row
    locked until commit, when it holds `seen` for rows of `version`; False, with nothing
    done, when it holds anything else or does not exist (then `lock` it and look). One
    statement where `lock` and `save` take two."""
    row = await conn.fetchrow(
        _ADVANCE if synchronous_commit else _ADVANCE_ASYNC_COMMIT,
        name,
        seen.tx_id,
        seen.global_position,
        to.tx_id,
        to.global_position,
        version,
    )
    return row is not None


async def stored_version(executor: Executor, name: str) -> int | None:
    """The version of the rows `name`'s checkpoint stands for; None without a checkpoint."""
    version = await executor.fetchval("SELECT version FROM checkpoints WHERE name = $1", name)
    return None if version is None else int(version)


async def version_of(executor: Executor, name: str) -> int:
    """The version of the rows `name`'s checkpoint stands for (1 for a reader without)."""
    return await stored_version(executor, name) or 1


async def save(
    executor: Executor,
    name: str,
    position: Position,
    *,
    synchronous_commit: bool = True,
    version: int | None = None,
) -> None:
    """Store the checkpoint. `synchronous_commit=False` (outside a transaction) does not
    wait for the disk: a crash may then move the reader back a little, never forward.
    `version`: the version of the rows it now stands for (a rebuild's, a promote's)."""
    if version is not None:
        await executor.execute(
            _SAVE_VERSION, name, position.tx_id, position.global_position, version
        )
        return
    sql = _SAVE if synchronous_commit else _SAVE_ASYNC_COMMIT
    await executor.execute(sql, name, position.tx_id, position.global_position)


@dataclasses.dataclass(frozen=True, slots=True)
class Lag:
    """How far a reader is behind the log: events after its checkpoint and their age."""

    position: Position
    events: int
    seconds: float
    updated_at: datetime | None


async def lag(executor: Executor, name: str) -> Lag:
    row: Any = await executor.fetchrow(
        """
        WITH cp AS (
            SELECT coalesce(max(tx_id::text)::xid8, '0') AS tx_id,
                   coalesce(max(position), 0) AS position, max(updated_at) AS updated_at
            FROM checkpoints WHERE name = $1
        ), behind AS (
            SELECT e.recorded_at FROM events e, cp
            WHERE (e.tx_id, e.global_position) > (cp.tx_id, cp.position)
        )
        SELECT cp.tx_id, cp.position, cp.updated_at,
               (SELECT count(*) FROM behind) AS events,
               coalesce(extract(epoch FROM now() - (SELECT min(recorded_at) FROM behind)), 0)
                   AS seconds
        FROM cp""",
        name,
    )
    return Lag(Position(row[0], row[1]), row[3], max(float(row[4]), 0.0), row[2])


@dataclasses.dataclass(frozen=True, slots=True)
class FenceHolder:
    """A transaction older than events readers cannot see yet: it holds the fence."""

    pid: int
    database: str | None
    application: str | None
    state: str | None
    age_seconds: float
    query: str


async def held_back(executor: Executor) -> tuple[int, list[FenceHolder]]:
    """Committed events behind the fence, and the oldest transactions holding it there."""
    waiting = await executor.fetchval(
        "SELECT count(*) FROM events WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot())"
    )
    rows = await executor.fetch(
        """SELECT pid, datname, application_name, state,
                  extract(epoch FROM now() - xact_start) AS age, left(query, 200) AS query
           FROM pg_stat_activity
           WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
           ORDER BY age(backend_xid) DESC LIMIT 3"""
    )
    holders = [FenceHolder(r[0], r[1], r[2], r[3], float(r[4] or 0), r[5] or "") for r in rows]
    return int(waiting), holders

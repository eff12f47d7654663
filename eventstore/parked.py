"""Events a projection could not decode or apply, parked so that the rest of the log flows.

A runner that meets such an event (after a few retries, for an apply that fails) records
it in `projection_errors` and moves its checkpoint past it in the same transaction: one
bad event never stops a read model. `retry` applies parked events again, once the cause
is fixed (an upcaster deployed, a bug in the fold fixed), by folding their streams anew.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from .events import Position, RecordedEvent
from .pg import RELAXED, Conn, Executor

__all__ = ["ParkedEvent", "beat", "count_parked", "forget", "list_parked", "park"]

_PARK = """
INSERT INTO projection_errors (projection, event_id, global_position, tx_id, stream_id,
                               event_type, schema_version, error, attempts)
VALUES ($1, $2, $3, $4::xid8, $5, $6, $7, $8, $9)
ON CONFLICT (projection, event_id) DO UPDATE
SET error = excluded.error, attempts = projection_errors.attempts + excluded.attempts,
    at = now()"""


@dataclasses.dataclass(frozen=True, slots=True)
class ParkedEvent:
    """One parked event of one projection, and the last error it met."""

    projection: str
    event_id: uuid.UUID
    position: Position
    stream_id: str
    event_type: str
    schema_version: int
    error: str
    attempts: int
    at: datetime


async def park(
    conn: Conn, projection: str, event: RecordedEvent, error: str, attempts: int
) -> None:
    """Record `event` as parked for `projection` (inside the runner's transaction)."""
    await conn.execute(
        _PARK,
        projection,
        event.event_id,
        event.global_position,
        event.tx_id,
        event.stream_id,
        event.event_type,
        event.schema_version,
        error[:2000],
        attempts,
    )


def _parked(row: Any) -> ParkedEvent:
    return ParkedEvent(
        row["projection"],
        row["event_id"],
        Position(row["tx_id"], row["global_position"]),
        row["stream_id"],
        row["event_type"],
        row["schema_version"],
        row["error"],
        row["attempts"],
        row["at"],
    )


async def list_parked(
    executor: Executor, projection: str | None = None, *, event_id: uuid.UUID | None = None
) -> list[ParkedEvent]:
    """Parked events in log order, of one projection (or all), or just `event_id`."""
    rows = await executor.fetch(
        """SELECT * FROM projection_errors
           WHERE ($1::text IS NULL OR projection = $1) AND ($2::uuid IS NULL OR event_id = $2)
           ORDER BY projection, tx_id, global_position""",
        projection,
        event_id,
    )
    return [_parked(r) for r in rows]


async def count_parked(executor: Executor) -> dict[str, int]:
    """Parked events per projection (projections without any are left out)."""
    rows = await executor.fetch("SELECT projection, count(*) FROM projection_errors GROUP BY 1")
    return {r[0]: int(r[1]) for r in rows}


async def forget(executor: Executor, projection: str, event_id: uuid.UUID) -> None:
    await executor.execute(
        "DELETE FROM projection_errors WHERE projection = $1 AND event_id = $2",
        projection,
        event_id,
    )


async def beat(executor: Executor, name: str) -> None:
    """A runner of `name` is alive: note it on its checkpoint row (no wait for the disk)."""
    await executor.execute(
        f"""{RELAXED}
        INSERT INTO checkpoints (name, heartbeat_at) SELECT $1, now() FROM relaxed
        ON CONFLICT (name) DO UPDATE SET heartbeat_at = now()""",
        name,
    )

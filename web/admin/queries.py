"""What the operator pages read from the event store (the SQL adapter of the admin pages).

Events are shown as stored: the JSON exactly as written (`jsonb_pretty`), not decoded into
the services' classes, so an unknown type or a broken payload can never break a page.
Indexes used: the primary key (newest first), `event_id`'s unique index, `(stream_id,
stream_version)`, and the `streams` read model's `(category, updated_at)`. The correlation
chain filters on `metadata->>'correlation_id'`, which has no index: it is bounded by
`CHAIN_LIMIT`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from eventstore.events import category_of
from eventstore.pg import Pool

__all__ = [
    "CHAIN_LIMIT",
    "STREAM_PAGE",
    "ChainLink",
    "StoredEvent",
    "StreamSummary",
    "by_id",
    "categories",
    "chain",
    "correlated",
    "in_stream",
    "recent",
    "recent_streams",
]

CHAIN_LIMIT = 500
STREAM_PAGE = 500

_COLUMNS = """global_position, stream_id, stream_version, event_id, event_type, schema_version,
    jsonb_pretty(data) AS data, metadata, recorded_at"""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the events table, for display."""

    global_position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: str  # pretty-printed JSON as stored
    metadata: dict[str, Any]
    recorded_at: dt.datetime

    @property
    def category(self) -> str:
        return category_of(self.stream_id)

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlation_id")
        return value if isinstance(value, str) else None

    @property
    def causation_id(self) -> str | None:
        value = self.metadata.get("causation_id")
        return value if isinstance(value, str) else None

    @property
    def excerpt(self) -> str:
        flat = " ".join(self.data.split())
        return flat if len(flat) <= 160 else flat[:159] + "…"


@dataclasses.dataclass(frozen=True, slots=True)
class StreamSummary:
    """A row of the `streams` read model."""

    stream_id: str
    category: str
    version: int
    last_event_type: str
    event_count: int
    updated_at: dt.datetime


def _event(row: Any) -> StoredEvent:
    metadata = row["metadata"]
    return StoredEvent(
        row["global_position"],
        row["stream_id"],
        row["stream_version"],
        row["event_id"],
        row["event_type"],
        row["schema_version"],
        row["data"],
        metadata if isinstance(metadata, dict) else {},
        row["recorded_at"],
    )


async def recent(
    pool: Pool, *, category: str | None = None, before: int | None = None, limit: int = 50
) -> list[StoredEvent]:
    """The global log newest first (by position), optionally one category, before a position."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM events
            WHERE ($1::text IS NULL OR starts_with(stream_id, $1 || '-'))
              AND ($2::bigint IS NULL OR global_position < $2)
            ORDER BY global_position DESC LIMIT $3""",
        category,
        before,
        limit,
    )
    return [_event(r) for r in rows]


async def by_id(pool: Pool, event_id: uuid.UUID) -> StoredEvent | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM events WHERE event_id = $1", event_id)
    return None if row is None else _event(row)


async def in_stream(
    pool: Pool, stream_id: str, *, after_version: int = 0, limit: int = STREAM_PAGE
) -> list[StoredEvent]:
    """A stream's events in version order (like `microshop events show`)."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2
            ORDER BY stream_version LIMIT $3""",
        stream_id,
        after_version,
        limit,
    )
    return [_event(r) for r in rows]


async def correlated(pool: Pool, correlation_id: str) -> list[StoredEvent]:
    """Every event with this correlation id, in log order (at most `CHAIN_LIMIT`)."""
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM events WHERE metadata->>'correlation_id' = $1
            ORDER BY global_position LIMIT $2""",
        correlation_id,
        CHAIN_LIMIT,
    )
    return [_event(r) for r in rows]


async def categories(pool: Pool) -> list[str]:
    """The stream categories the `streams` read model knows."""
    rows = await pool.fetch("SELECT DISTINCT category FROM streams ORDER BY category")
    return [r["category"] for r in rows]


async def recent_streams(
    pool: Pool, *, category: str | None = None, limit: int = 20
) -> list[StreamSummary]:
    """The streams that changed last (from the `streams` read model)."""
    rows = await pool.fetch(
        """SELECT stream_id, category, version, last_event_type, event_count, updated_at
           FROM streams WHERE ($1::text IS NULL OR category = $1)
           ORDER BY updated_at DESC, stream_id LIMIT $2""",
        category,
        limit,
    )
    return [StreamSummary(*r) for r in rows]


# -- the correlation chain ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ChainLink:
    """An event of a correlation chain, with the event that caused it when that is known."""

    event: StoredEvent
    cause: StoredEvent | None
    depth: int


def chain(events: list[StoredEvent]) -> list[ChainLink]:
    """The events (in log order) linked by causation: each one's cause within the chain and
    its depth below the first cause (an event whose cause is outside the chain is a root)."""
    by_id = {str(e.event_id): e for e in events}
    depths: dict[str, int] = {}

    def depth(event: StoredEvent) -> int:
        seen: set[str] = set()
        steps, current = 0, event
        while (cause := by_id.get(current.causation_id or "")) is not None:
            key = str(cause.event_id)
            if key in depths:
                return steps + 1 + depths[key]
            if key in seen or key == str(current.event_id):
                break  # a cycle in bad metadata: stop here
            seen.add(key)
            steps, current = steps + 1, cause
        return steps

    links = []
    for event in events:
        depths[str(event.event_id)] = d = depth(event)
        links.append(ChainLink(event, by_id.get(event.causation_id or ""), min(d, 12)))
    return links

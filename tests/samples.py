"""Event types and a projection used by the event store tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

import asyncpg

from eventstore import (
    InMemoryEventStore,
    PostgresEventStore,
    Projection,
    RecordedEvent,
    Row,
    registry,
)
from eventstore.personal import PERSONAL, SUBJECT
from eventstore.pg import Pool


@registry.event("TestNoted")
@dataclasses.dataclass(frozen=True, slots=True)
class Noted:
    text: str
    n: int = 1


@registry.event("TestPriced")
@dataclasses.dataclass(frozen=True, slots=True)
class Priced:
    sku: str
    price: Decimal


@registry.event("TestSigned")
@dataclasses.dataclass(frozen=True, slots=True)
class Signed:
    """A sign-up with personal data: `name` is sealed with `member`'s key when stored."""

    member: Annotated[str, SUBJECT]
    name: Annotated[str, PERSONAL]
    plan: str = "basic"


def notes_projection(uid: str, *, by_stream: bool = True) -> Projection:
    """A projection over the `note{uid}-*` streams into table `notes_{uid}` (rebuilt
    stream by stream unless `by_stream` is false: then in log order)."""
    category = f"note{uid}"

    class Notes(Projection):
        name = f"notes_{uid}"
        table = f"notes_{uid}"
        key = "stream_id"
        categories = frozenset({category})
        keyed_by_stream = by_stream
        columns = ("stream_id", "count", "total", "last_text", "version")
        explosive = True  # the fold throws on "explode..." texts (until a test "fixes" it)

        def key_of(self, event: RecordedEvent) -> str | None:
            return event.stream_id if event.category == category else None

        def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
            data = event.data
            if isinstance(data, Noted) and data.text == "delete":
                return None
            if isinstance(data, Noted) and data.text.startswith("explode") and self.explosive:
                raise ValueError(f"the fold cannot take {data.text!r}")
            row = row or {
                "stream_id": event.stream_id,
                "count": 0,
                "total": 0,
                "last_text": None,
                "version": 0,
            }
            row["count"] += 1
            if isinstance(data, Noted):
                row["total"] += data.n
                row["last_text"] = data.text
            row["version"] = event.stream_version
            return row

    return Notes()


NOTES_DDL = """CREATE TABLE {table} (
    stream_id text PRIMARY KEY, count integer NOT NULL, total bigint NOT NULL,
    last_text text, version integer NOT NULL)"""


async def table_rows(pool: Pool, projection: Projection) -> list[dict[str, Any]]:
    """The projection's table, ordered by its key."""
    rows = await pool.fetch(f"SELECT * FROM {projection.table} ORDER BY {projection.key}")
    return [dict(r) for r in rows]


async def expected_rows(store: PostgresEventStore, projection: Projection) -> list[dict[str, Any]]:
    """The fold of the whole log in memory, event by event: what every mode must produce."""
    state: dict[Any, Any] = {}
    async for batch in store.iter_all(categories=projection.categories):
        projection.fold(state, batch)
    return sorted((r for r in state.values() if r is not None), key=lambda r: r[projection.key])


class RacingStore(InMemoryEventStore):
    """The in-memory store with reads that yield to the other writers, as a database's do:
    concurrent writers all load before any of them appends, so they really race, as
    writers in different processes do (no turns between them: `command.execute` has
    writers of one process take turns; and no states remembered between them, which
    an aggregate that `remembers` keeps per process). `lost` counts the appends that
    lost (a `ConcurrencyError`)."""

    turns = property(lambda self: {}, lambda self, value: None)
    remembered = property(lambda self: {}, lambda self, value: None)

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0
        self.append_observers.append(self._count)

    def _count(self, stream_id: str, events: int, seconds: float, outcome: str) -> None:
        self.lost += outcome == "conflict"

    async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
        recorded = await super().read_stream(stream_id, **options)
        await asyncio.sleep(0)
        return recorded


@contextlib.asynccontextmanager
async def fence_held(dsn: str) -> AsyncIterator[None]:
    """An open transaction with an id, on a connection of its own, for the block: it holds
    every global-log reader at the fence (nothing appended meanwhile can be read)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.fetchval("SELECT pg_current_xact_id()")
            yield
    finally:
        await conn.close()

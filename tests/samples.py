"""Event types and a projection used by the event store tests."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

from eventstore import InMemoryEventStore, Projection, RecordedEvent, Row, registry


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


def notes_projection(uid: str) -> Projection:
    """A projection over the `note{uid}-*` streams into table `notes_{uid}`."""
    category = f"note{uid}"

    class Notes(Projection):
        name = f"notes_{uid}"
        table = f"notes_{uid}"
        key = "stream_id"
        categories = frozenset({category})
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


class RacingStore(InMemoryEventStore):
    """The in-memory store with reads that yield to the other writers, as a database's do:
    concurrent writers all load before any of them appends, so they really race. `lost`
    counts the appends that lost (a `ConcurrencyError`)."""

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

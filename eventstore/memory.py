"""An event store in memory: the same port as Postgres, for fast tests of handlers and decisions.

Not a mock: it keeps the `EventStore` contract (the suite in `tests/contract/eventstore.py`
runs against both implementations). Events are stored as the JSON their registry writes
and decoded on every read, so upcasters run and an event that would not survive Postgres
does not survive here either. Every append happens without an `await` in between, so it
is atomic for the event loop, and commit order is append order: there is no fence.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import ConcurrencyError, DuplicateEventError
from .events import METADATA_DECODER, START, EventRegistry, Metadata, Position, RecordedEvent
from .events import registry as default_registry
from .port import AppendResult, EventStore, Sealer

__all__ = ["InMemoryEventStore"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Stored:
    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: str
    metadata: str
    recorded_at: datetime


class InMemoryEventStore(EventStore):
    """Streams and the global log in lists; `conn` is not supported (there is no database)."""

    def __init__(
        self, *, registry: EventRegistry = default_registry, vault: Sealer | None = None
    ) -> None:
        super().__init__(registry, vault)
        self._log: list[_Stored] = []
        self._streams: dict[str, list[_Stored]] = {}
        self._ids: set[uuid.UUID] = set()

    async def _append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | None,
        metadata: Metadata,
        event_ids: tuple[uuid.UUID, ...],
        conn: Any,
    ) -> AppendResult:
        _no_transactions(conn)
        stream = self._streams.get(stream_id, [])
        actual = len(stream)
        expected = actual if expected_version is None else expected_version
        if expected != actual:
            raise ConcurrencyError(stream_id, expected, actual)
        if self._ids.intersection(event_ids) or len(set(event_ids)) != len(event_ids):
            raise DuplicateEventError([str(i) for i in event_ids])
        encode, type_of = self.registry.encode, self.registry.type_of
        meta, now = encode(metadata), datetime.now(UTC)
        written = []
        for offset, (event, event_id) in enumerate(zip(events, event_ids, strict=True), 1):
            name, version = type_of(event)  # raises before anything is written
            written.append(
                _Stored(
                    len(self._log) + offset,
                    stream_id,
                    actual + offset,
                    event_id,
                    name,
                    version,
                    encode(event),
                    meta,
                    now,
                )
            )
        self._log.extend(written)
        self._streams.setdefault(stream_id, []).extend(written)
        self._ids.update(event_ids)
        last = written[-1].position
        return AppendResult(actual + len(events), Position(last, last), event_ids)

    async def _stored(
        self, event_ids: tuple[uuid.UUID, ...], conn: Any
    ) -> dict[uuid.UUID, tuple[str, int, Position]]:
        _no_transactions(conn)
        wanted = set(event_ids)
        return {
            e.event_id: (e.stream_id, e.stream_version, Position(e.position, e.position))
            for e in self._log
            if e.event_id in wanted
        }

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent]:
        _no_transactions(conn)
        stream = self._streams.get(stream_id, [])[after_version:]
        rows = stream if limit is None else stream[:limit]
        return [event for e in rows for event in self._recorded(e)]

    async def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def read_all(
        self,
        after: Position = START,
        *,
        limit: int = 1000,
        categories: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        batch = self._log[after.global_position : after.global_position + limit]
        return [event for e in batch for event in self._recorded(e, categories, lenient=True)]

    async def head(self) -> Position:
        last = len(self._log)
        return Position(last, last)

    def _recorded(
        self, e: _Stored, categories: Collection[str] | None = None, *, lenient: bool = False
    ) -> list[RecordedEvent]:
        """The events one stored row stands for today (several after a split)."""
        category = e.stream_id.partition("-")[0]
        if categories is not None and category not in categories:
            found: list[Any] = [None]
        elif self.registry.expands(e.event_type, e.schema_version):
            found = self.registry.decode_rows_data(
                e.event_type, e.schema_version, e.data, lenient=lenient
            )
        else:
            decode = self.registry.decode_or_undecodable if lenient else self.registry.decode
            found = [decode(e.event_type, e.schema_version, e.data)]
        meta = METADATA_DECODER.decode(e.metadata)
        return [
            RecordedEvent(
                e.position,
                e.position,
                e.stream_id,
                e.stream_version,
                e.event_id,
                e.event_type,
                e.schema_version,
                data,
                meta,
                e.recorded_at,
            )
            for data in found
        ]


def _no_transactions(conn: Any) -> None:
    if conn is not None:
        raise TypeError("the in-memory event store has no transactions to join (conn)")

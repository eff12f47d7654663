"""The event store port: what services need from an event store, whatever keeps the events.

Two implementations keep this contract, and one test suite holds both to it
(`tests/contract/eventstore.py`): `PostgresEventStore` (`store.py`, the real one) and
`InMemoryEventStore` (`memory.py`, for fast tests of handlers and decisions). Global-log
machinery that only Postgres has (fenced batches, wake-ups, the relay's raw rows) stays
on `PostgresEventStore`.
"""

from __future__ import annotations

import abc
import logging
import random
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from .errors import ConcurrencyError, DuplicateEventError, PersonalDataError
from .events import START, EventRegistry, Metadata, Position, RecordedEvent
from .personal import personal_fields

__all__ = [
    "ANY",
    "NO_STREAM",
    "AppendObserver",
    "AppendResult",
    "EventStore",
    "Sealer",
    "new_event_id",
]

log = logging.getLogger(__name__)

AppendObserver = Callable[[str, int, float, str], None]
"""Told of every append: stream id, events written, seconds taken, "ok" or "conflict"."""

ANY: None = None
"""`expected_version` that accepts whatever version the stream is at."""
NO_STREAM = 0
"""`expected_version` of a stream that must not exist yet."""

EMPTY_METADATA = Metadata()

T = TypeVar("T")


class Sealer(Protocol):
    """Seals an event's personal fields before it is stored (`vault.PersonalDataVault`)."""

    async def seal(self, event: T, *, conn: Any = None) -> T: ...


def new_event_id() -> uuid.UUID:
    """A random (version 4) UUID; event ids need uniqueness, not secrecy, so no os.urandom."""
    return uuid.UUID(int=random.getrandbits(128), version=4)


class AppendResult(NamedTuple):
    """What an append wrote: the stream's new version and the last event's log position."""

    version: int
    position: Position
    event_ids: tuple[uuid.UUID, ...]


def _landed(
    stream_id: str,
    ids: tuple[uuid.UUID, ...],
    found: dict[uuid.UUID, tuple[str, int, Position]],
) -> AppendResult | None:
    """The result of an earlier append of exactly `ids` to `stream_id` (in this order, at
    consecutive versions), or None when they are not stored that way."""
    if len(found) != len(ids) or any(where[0] != stream_id for where in found.values()):
        return None
    versions = [found[i][1] for i in ids]
    if versions != list(range(versions[0], versions[0] + len(ids))):
        return None
    return AppendResult(versions[-1], found[ids[-1]][2], ids)


class EventStore(abc.ABC):
    """Streams of typed events, appended with optimistic concurrency, and one global log.

    Guarantees every implementation keeps:
    - `append` is atomic: all of its events land, at consecutive versions, or none do.
    - A wrong `expected_version` raises `ConcurrencyError(stream, expected, actual)`.
    - Appending events whose ids are already stored, in this stream at the very versions
      this append would give them, is a retry of a write that landed: it succeeds and
      returns the original result, writing nothing. Any other clash of ids raises
      `DuplicateEventError`. Inside a caller's transaction that the clash aborted
      (Postgres), the clash comes out as it is (`ConcurrencyError` with the version
      unknown, or `DuplicateEventError`): that transaction can do nothing more.
    - `read_stream` gives a stream's events in version order; `read_all` gives the global
      log in commit order, never skipping an event that commits late.
    - Personal data is never stored in plain text: an event with personal fields is sealed
      by the store's `vault` first, and without a vault it is refused.
    """

    registry: EventRegistry

    def __init__(self, registry: EventRegistry, vault: Sealer | None = None) -> None:
        self.registry = registry
        self.vault = vault
        self.append_observers: list[AppendObserver] = []
        self.turns: dict[str, Any] = {}  # `command.execute`'s writers waiting, by stream
        self.remembered: dict[str, Any] = {}  # `command.remember`: last known states, LRU

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | None,
        *,
        metadata: Metadata | None = None,
        event_ids: Sequence[uuid.UUID] | None = None,
        conn: Any = None,
    ) -> AppendResult:
        """Append `events` to `stream_id` atomically.

        `expected_version` is the version the caller decided on (`NO_STREAM` for a new
        stream) or `ANY`. `conn` is a transaction of the implementation's own (Postgres: a
        connection inside a transaction) to append in, with the caller's other writes.
        Give `event_ids` to make the append idempotent: sent again, it returns what the
        first one wrote.
        """
        if not events:
            raise ValueError("append needs at least one event")
        if event_ids is not None and len(event_ids) != len(events):
            raise ValueError("event_ids must match events one to one")
        if expected_version is not None and expected_version < 0:
            raise ValueError("expected_version is >= 0 (or ANY)")
        ids = tuple(event_ids) if event_ids is not None else tuple(new_event_id() for _ in events)
        if any(personal_fields(type(event)) for event in events):
            events = await self._sealed(events, conn)
        started = time.perf_counter()
        try:
            result = await self._append(
                stream_id, events, expected_version, metadata or EMPTY_METADATA, ids, conn
            )
        except (ConcurrencyError, DuplicateEventError) as clash:
            if self._clash_aborts(conn):  # the caller's transaction can do nothing more
                self._observe(stream_id, 0, time.perf_counter() - started, "conflict")
                raise
            found = {} if event_ids is None else await self._stored(ids, conn)
            landed = _landed(stream_id, ids, found)
            if landed is not None and expected_version in (None, landed.version - len(ids)):
                self._observe(stream_id, 0, time.perf_counter() - started, "ok")
                return landed  # a retry of an append that went through: its result again
            if found:  # the ids are stored, but not as this append would store them
                raise DuplicateEventError([str(i) for i in ids if i in found]) from clash
            self._observe(stream_id, 0, time.perf_counter() - started, "conflict")
            raise
        self._observe(stream_id, len(events), time.perf_counter() - started, "ok")
        return result

    async def _sealed(self, events: Sequence[object], conn: Any) -> list[object]:
        if self.vault is None:
            raise PersonalDataError("this event store has no vault to seal personal data with")
        return [await self.vault.seal(event, conn=conn) for event in events]

    def _clash_aborts(self, conn: Any) -> bool:
        """Whether a clash of an append on `conn` may have ended the caller's transaction
        (then nothing more is asked on it: the clash comes out as it is)."""
        return False

    @abc.abstractmethod
    async def _stored(
        self, event_ids: tuple[uuid.UUID, ...], conn: Any
    ) -> dict[uuid.UUID, tuple[str, int, Position]]:
        """Where each of `event_ids` that is stored lies: (stream id, version, position)."""

    @abc.abstractmethod
    async def _append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | None,
        metadata: Metadata,
        event_ids: tuple[uuid.UUID, ...],
        conn: Any,
    ) -> AppendResult:
        """Write checked arguments (`append` validated them and tells the observers)."""

    def _observe(self, stream_id: str, events: int, seconds: float, outcome: str) -> None:
        for observer in self.append_observers:
            try:
                observer(stream_id, events, seconds, outcome)
            except Exception:
                log.exception("append observer %r failed", observer)

    @abc.abstractmethod
    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        limit: int | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent]:
        """The events of one stream after `after_version`, in version order ([] if none)."""

    @abc.abstractmethod
    async def stream_version(self, stream_id: str) -> int:
        """The version of a stream (0: it has no events)."""

    @abc.abstractmethod
    async def read_all(
        self,
        after: Position = START,
        *,
        limit: int = 1000,
        categories: Collection[str] | None = None,
    ) -> list[RecordedEvent]:
        """One batch of the global log after `after`, in commit order. With `categories`,
        only events of those stream categories have their `data` decoded (others: None).
        An event this code cannot read has `Undecodable` data: the log never stops."""

    @abc.abstractmethod
    async def head(self) -> Position:
        """The last position readers may see now."""

    async def close(self) -> None:  # noqa: B027 - a store may hold nothing to close
        """Release what the store holds."""

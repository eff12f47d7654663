"""Event envelope, metadata, positions and the registry of typed events with upcasters.

Domain events are plain dataclasses defined in each service's pure `domain/` package; the
service registers them here under a type name and a schema version. Stored JSON of an older
version is upcast (dict -> dict, one version at a time) before it is decoded into the class;
an upcaster may also rename the type or turn one stored event into several, or none.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import msgspec

from .errors import UnknownEventType, UpcastError
from .personal import personal_fields

__all__ = [
    "START",
    "Dropped",
    "EventRegistry",
    "Metadata",
    "Position",
    "RecordedEvent",
    "Undecodable",
    "Upcaster",
    "category_of",
    "registry",
]

T = TypeVar("T")
Upcaster = Callable[[dict[str, Any]], "dict[str, Any] | list[tuple[str, int, dict[str, Any]]]"]
"""Turns version N of a type's JSON into version N+1 (a dict), or into any number of
events of any types and versions, `[(type, version, data), ...]` (renamed, split, dropped)."""


class Position(NamedTuple):
    """A place in the global log: commit-safe order is `(tx_id, global_position)`."""

    tx_id: int
    global_position: int

    def __str__(self) -> str:
        return f"{self.tx_id}/{self.global_position}"


START = Position(0, 0)


class Metadata(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Who and what caused an event: travels with it into AMQP headers and logs."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    service: str | None = None
    traceparent: str | None = None


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: its envelope plus the typed domain event in `data`.

    `data` is an instance of the registered class, or a plain dict for a type this process
    does not know (a tool reading another service's events).
    """

    global_position: int
    tx_id: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: Any
    metadata: Metadata
    recorded_at: datetime

    @property
    def position(self) -> Position:
        return Position(self.tx_id, self.global_position)

    @property
    def category(self) -> str:
        return category_of(self.stream_id)


class Dropped(msgspec.Struct, frozen=True, gc=False):
    """The `data` of a stored event an upcaster turned into nothing: readers and folds skip
    it, and its row still counts for its stream's version."""

    event_type: str
    schema_version: int


class Undecodable(msgspec.Struct, frozen=True, gc=False):
    """The `data` of a global-log event this code cannot read (a version newer than it
    knows, a missing or failing upcaster, JSON that does not fit): readers of the log park
    or report such an event and go on, instead of stopping at it."""

    reason: str


def category_of(stream_id: str) -> str:
    """`order-42` -> `order`: the part of a stream id before the first dash."""
    return stream_id.partition("-")[0]


@dataclasses.dataclass(slots=True)
class _EventType:
    name: str
    cls: type[Any]
    version: int
    decoder: msgspec.json.Decoder[Any]
    many: msgspec.json.Decoder[list[Any]]


_ENCODER = msgspec.json.Encoder(decimal_format="string")
_ANY_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
METADATA_DECODER = msgspec.json.Decoder(Metadata)


class EventRegistry:
    """Type names, schema versions and upcasters of the events a process reads and writes."""

    def __init__(self) -> None:
        self._by_name: dict[str, _EventType] = {}
        self._by_class: dict[type[Any], _EventType] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[T], *, name: str | None = None, version: int = 1) -> type[T]:
        """Register dataclass `cls` as event type `name` (default: the class name)."""
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        if version < 1:
            raise ValueError("schema versions start at 1")
        personal_fields(cls)  # a class with personal data must say whose it is (TypeError)
        name = name or cls.__name__
        known = self._by_name.get(name)
        if known is not None and known.cls is not cls:
            raise ValueError(f"event type {name!r} is already registered to {known.cls!r}")
        entry = _EventType(
            name,
            cls,
            version,
            msgspec.json.Decoder(cls),
            msgspec.json.Decoder(list[cls]),  # type: ignore[valid-type]
        )
        self._by_name[name] = entry
        self._by_class[cls] = entry
        return cls

    def register_all(self, *classes: type[Any]) -> None:
        """Register each of `classes` under its class name (one call per service: its
        events' names are its contract), at the schema version the class states in
        `SCHEMA_VERSION: ClassVar[int]` (1 when it states none)."""
        for cls in classes:
            self.register(cls, version=getattr(cls, "SCHEMA_VERSION", 1))

    def event(self, name: str | None = None, version: int = 1) -> Callable[[type[T]], type[T]]:
        """Class decorator form of `register`."""
        return lambda cls: self.register(cls, name=name, version=version)

    def upcaster(self, name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns version `from_version` of `name` into the next
        one (a dict), or into any number of events `[(type, version, data), ...]`."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(name, from_version)] = fn
            return fn

        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def type_of(self, event: object) -> tuple[str, int]:
        """The registered `(type name, schema version)` of an event instance."""
        entry = self._by_class.get(type(event))
        if entry is None:
            raise UnknownEventType(f"{type(event).__qualname__} is not a registered event")
        return entry.name, entry.version

    def version_of(self, name: str) -> int:
        """The schema version of `name` this registry writes (and upcasts to)."""
        entry = self._by_name.get(name)
        if entry is None:
            raise UnknownEventType(f"no event type {name!r} is registered")
        return entry.version

    def class_of(self, name: str) -> type[Any]:
        entry = self._by_name.get(name)
        if entry is None:
            raise UnknownEventType(f"no event type {name!r} is registered")
        return entry.cls

    @staticmethod
    def encode(event: object) -> str:
        """JSON text of an event (decimals as strings, so money never becomes a float)."""
        return _ENCODER.encode(event).decode()

    def decode(self, name: str, version: int, raw: str | bytes) -> Any:
        """Typed event from stored JSON, upcasting older schema versions first (an event
        upcast into nothing reads as `Dropped`; one upcast into several raises: read it
        with `decode_many`)."""
        entry = self._by_name.get(name)
        if entry is not None and version == entry.version:
            try:
                return entry.decoder.decode(raw)
            except msgspec.ValidationError as exc:
                raise UpcastError(f"{name} v{version} does not fit {entry.cls!r}: {exc}") from exc
        if entry is None and (name, version) not in self._upcasters:
            return _ANY_DECODER.decode(raw)  # a type this code does not read: plain JSON
        events = self.decode_many(name, version, raw)
        if len(events) > 1:
            raise UpcastError(f"{name} v{version} upcasts to {len(events)} events")
        return events[0] if events else Dropped(name, version)

    def decode_batch(self, name: str, version: int, raws: Sequence[str]) -> list[Any] | None:
        """The typed events of many stored JSON texts of `name` at the version this code
        writes, parsed at once (None for another version or an unknown type: `decode`
        each). Raises `msgspec.ValidationError` / `DecodeError` if any does not fit."""
        entry = self._by_name.get(name)
        if entry is None or version != entry.version:
            return None
        return entry.many.decode(f"[{','.join(raws)}]")

    def decode_many(self, name: str, version: int, raw: str | bytes) -> list[Any]:
        """The typed events stored JSON stands for today: one, or (after an upcaster that
        splits, renames or drops) any number, none included."""
        entry = self._by_name.get(name)
        if entry is not None and version == entry.version:
            return [self.decode(name, version, raw)]
        typed = []
        for current, _, data in self._upcast(name, version, _ANY_DECODER.decode(raw)):
            entry = self._by_name.get(current)
            if entry is None:
                typed.append(data)
                continue
            try:
                typed.append(msgspec.convert(data, entry.cls, strict=False))
            except msgspec.ValidationError as exc:
                raise UpcastError(f"{current} v{entry.version}: {exc}") from exc
        return typed

    def decode_or_undecodable(self, name: str, version: int, raw: str | bytes) -> Any:
        """`decode`, or `Undecodable(reason)` for an event this code cannot read."""
        try:
            return self.decode(name, version, raw)
        except (UpcastError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Undecodable(str(exc))
        except Exception as exc:  # an upcaster's bug: this event is unreadable, not the log
            return Undecodable(f"{type(exc).__name__} while upcasting {name} v{version}: {exc}")

    def decode_rows_data(self, name: str, version: int, raw: str, *, lenient: bool) -> list[Any]:
        """The data of the events one stored row stands for today: usually one; after an
        upcaster that splits or drops, several or a single `Dropped` (the row still counts
        for its stream's version). `lenient`: an unreadable row gives `Undecodable`."""
        try:
            events = self.decode_many(name, version, raw)
        except (UpcastError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            if not lenient:
                raise
            return [Undecodable(str(exc))]
        except Exception as exc:  # an upcaster's bug
            if not lenient:
                raise
            return [Undecodable(f"{type(exc).__name__} while upcasting {name} v{version}: {exc}")]
        return events or [Dropped(name, version)]

    def expands(self, name: str, version: int) -> bool:
        """Whether stored `(name, version)` needs upcasting (and so may become any number
        of events): readers decode such rows with `decode_many`."""
        entry = self._by_name.get(name)
        return (name, version) in self._upcasters or (
            entry is not None and entry.version != version
        )

    def _upcast(self, name: str, version: int, data: Any) -> list[tuple[str, int, Any]]:
        """`(type, version, data)` of today's events for stored `(name, version, data)`."""
        done: list[tuple[str, int, Any]] = []
        pending = [(name, version, data)]
        for _ in range(10_000):  # a cycle of upcasters would never end
            if not pending:
                return done
            name, version, data = pending.pop(0)
            entry = self._by_name.get(name)
            if entry is not None and version > entry.version:
                raise UpcastError(
                    f"{name} v{version} is newer than this code's v{entry.version}; upgrade first"
                )
            if entry is not None and version == entry.version:
                done.append((name, version, data))
                continue
            upcast = self._upcasters.get((name, version))
            if upcast is None:
                if entry is None:  # a type no code reads (and no upcaster renames): as it is
                    done.append((name, version, data))
                    continue
                raise UpcastError(f"no upcaster for {name} from v{version}")
            result = upcast(data)
            if isinstance(result, dict):
                pending.insert(0, (name, version + 1, result))
            else:  # renamed, split or dropped: each continues from where it now stands
                pending[0:0] = list(result)
        raise UpcastError(f"the upcasters of {name} v{version} never end")

    def rename(self, old: str, version: int, *, to: str, to_version: int = 1) -> None:
        """Stored `old` v`version` is today's `to` v`to_version` (then upcast as usual)."""
        self._upcasters[(old, version)] = lambda data: [(to, to_version, data)]


registry = EventRegistry()
"""The process-wide registry services register their domain events in."""

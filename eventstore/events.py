"""Event envelope, metadata, positions and the registry of typed events with upcasters.

Domain events are plain dataclasses defined in each service's pure `domain/` package; the
service registers them here under a type name and a schema version. Stored JSON of an older
version is upcast (dict -> dict, one version at a time) before it is decoded into the class.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import msgspec

from .errors import UnknownEventType, UpcastError

__all__ = [
    "START",
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
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


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
        name = name or cls.__name__
        known = self._by_name.get(name)
        if known is not None and known.cls is not cls:
            raise ValueError(f"event type {name!r} is already registered to {known.cls!r}")
        entry = _EventType(name, cls, version, msgspec.json.Decoder(cls))
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
        """Register a function that turns version `from_version` of `name` into the next one."""

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
        """Typed event from stored JSON, upcasting older schema versions first."""
        entry = self._by_name.get(name)
        if entry is None:
            return _ANY_DECODER.decode(raw)
        if version == entry.version:
            try:
                return entry.decoder.decode(raw)
            except msgspec.ValidationError as exc:
                raise UpcastError(f"{name} v{version} does not fit {entry.cls!r}: {exc}") from exc
        return self.from_dict(name, version, _ANY_DECODER.decode(raw))

    def decode_or_undecodable(self, name: str, version: int, raw: str | bytes) -> Any:
        """`decode`, or `Undecodable(reason)` for an event this code cannot read."""
        try:
            return self.decode(name, version, raw)
        except (UpcastError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            return Undecodable(str(exc))
        except Exception as exc:  # an upcaster's bug: this event is unreadable, not the log
            return Undecodable(f"{type(exc).__name__} while upcasting {name} v{version}: {exc}")

    def from_dict(self, name: str, version: int, data: dict[str, Any]) -> Any:
        """Typed event from a JSON-like dict of schema `version` (upcast as needed)."""
        entry = self._by_name.get(name)
        if entry is None:
            return data
        if version > entry.version:
            raise UpcastError(
                f"{name} v{version} is newer than this code's v{entry.version}; upgrade first"
            )
        while version < entry.version:
            upcast = self._upcasters.get((name, version))
            if upcast is None:
                raise UpcastError(f"no upcaster for {name} from v{version}")
            data = upcast(data)
            version += 1
        try:
            return msgspec.convert(data, entry.cls, strict=False)
        except msgspec.ValidationError as exc:
            raise UpcastError(f"{name} v{version}: {exc}") from exc


registry = EventRegistry()
"""The process-wide registry services register their domain events in."""

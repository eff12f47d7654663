"""Decode the whole log with the code at hand: the check to run before deploying it.

`check_log` reads every committed event in commit order (raw rows, in batches) and decodes
each with the store's registry, exactly as readers will: upcasters run (renaming,
splitting or dropping as they say), a version newer than the code knows fails, a type no
code registers (or renames) fails. It counts what it saw per
`(type, schema_version)` and keeps every failure with its position, id and reason.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import uuid
from collections.abc import Callable

import msgspec

from .errors import UpcastError
from .events import START, Position
from .store import PostgresEventStore

__all__ = ["Failure", "LogCheck", "check_log"]


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """An event the current code cannot read, and why."""

    position: Position
    event_id: uuid.UUID
    stream_id: str
    event_type: str
    schema_version: int
    reason: str


@dataclasses.dataclass(slots=True)
class LogCheck:
    """What a check found: events per `(type, version)`, and every one that failed."""

    counts: collections.Counter[tuple[str, int]] = dataclasses.field(
        default_factory=collections.Counter
    )
    failures: list[Failure] = dataclasses.field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return not self.failures


async def check_log(
    store: PostgresEventStore,
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> LogCheck:
    """Decode every event of `store`'s log; `progress(n)` after each batch of n events."""
    registry = store.registry
    result = LogCheck()
    counts, failures = result.counts, result.failures
    batches = store.iter_raw(START, batch_size=batch_size)
    async with contextlib.aclosing(batches):
        async for rows in batches:
            for position, tx_id, stream_id, _, event_id, event_type, version, data, _, _ in rows:
                counts[event_type, version] += 1
                if event_type not in registry and not registry.expands(event_type, version):
                    reason = f"no code registers the event type {event_type!r}"
                else:
                    try:
                        today = registry.decode_many(event_type, version, data)
                        if not any(isinstance(e, dict) for e in today):
                            continue
                        reason = f"{event_type} v{version} upcasts to a type no code registers"
                    except (UpcastError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                        reason = str(exc)
                    except Exception as exc:  # an upcaster's bug fails this event, not the check
                        reason = f"{type(exc).__name__} while upcasting: {exc}"
                failures.append(
                    Failure(
                        Position(tx_id, position), event_id, stream_id, event_type, version, reason
                    )
                )
            if progress is not None:
                progress(len(rows))
    return result

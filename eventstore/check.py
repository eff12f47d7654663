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

import asyncpg
import msgspec

from .errors import UpcastError
from .events import START, EventRegistry, Position
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


_COLUMNS = "global_position, tx_id, stream_id, event_id, event_type, schema_version, data::text"


async def check_log(
    store: PostgresEventStore,
    *,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> LogCheck:
    """Decode every event of `store`'s log; `progress(n)` after each batch of n events.

    The rows of a batch are decoded per `(type, version)`: the events of a type at the
    version this code writes in one parse, the rest (and a group that fails) one by one.
    """
    registry = store.registry
    result = LogCheck()
    batches = store.iter_raw(START, batch_size=batch_size, columns=_COLUMNS)
    async with contextlib.aclosing(batches):
        async for rows in batches:
            groups: dict[tuple[str, int], list[asyncpg.Record]] = collections.defaultdict(list)
            for row in rows:
                groups[row[4], row[5]].append(row)
            failed: list[Failure] = []
            for (event_type, version), group in groups.items():
                result.counts[event_type, version] += len(group)
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    if (
                        registry.decode_batch(event_type, version, [r[6] for r in group])
                        is not None
                    ):
                        continue  # all of them fit
                for position, tx_id, stream_id, event_id, _, _, data in group:
                    reason = _failure(registry, event_type, version, data)
                    if reason is not None:
                        at = Position(tx_id, position)
                        failed.append(Failure(at, event_id, stream_id, event_type, version, reason))
            result.failures.extend(sorted(failed, key=lambda f: f.position))
            if progress is not None:
                progress(len(rows))
    return result


def _failure(registry: EventRegistry, event_type: str, version: int, data: str) -> str | None:
    """Why this code cannot read one stored event (None: it can)."""
    if event_type not in registry and not registry.expands(event_type, version):
        return f"no code registers the event type {event_type!r}"
    try:
        today = registry.decode_many(event_type, version, data)
    except (UpcastError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        return str(exc)
    except Exception as exc:  # an upcaster's bug fails this event, not the check
        return f"{type(exc).__name__} while upcasting: {exc}"
    if any(isinstance(e, dict) for e in today):
        return f"{event_type} v{version} upcasts to a type no code registers"
    return None

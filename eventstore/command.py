"""The one write path: load a stream, fold it, decide, append at the version folded.

`execute` is what every service's write goes through (the shape of Marten's
`FetchForWriting` and the `eventsourcing` library's `Application.save`): it reads the
stream (after an optional snapshot), folds it into the current state, asks the pure
`decide(state)` for new events, and appends them with the version it read. A lost race
(`ConcurrencyError`) means someone else appended meanwhile: it waits a jittered moment,
reloads and decides again on the new state (which may now refuse), up to the policy's
attempts, then lets the `ConcurrencyError` out (HTTP 409 at the edge). A decision that
records nothing writes nothing.

An aggregate that `remembers` keeps, per event store, the state and version each of its
streams had when this process last read or wrote it (bounded: the least recently noted go
first). The next write decides on that state and appends at that version without reading:
the append's version check proves the state current, as it proves any loaded state. Should
the stream have moved on (another process wrote), the append loses, and the write loads and
decides as usual. A decision on a remembered state that refuses or records nothing proves
nothing: it is taken again on a loaded state. Inside a caller's transaction, where a lost
race would abort the transaction, the remembered state is a snapshot instead: the events
after it are read and folded on. Only committed states are remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from .category import Category
from .errors import ConcurrencyError
from .events import Dropped, Metadata, Position, RecordedEvent
from .port import AppendResult, EventStore

__all__ = [
    "Aggregate",
    "Executed",
    "Fold",
    "Loaded",
    "Retry",
    "Snapshot",
    "execute",
    "load",
    "recall",
    "remember",
]

S = TypeVar("S")

Fold = Callable[[Iterable[Any], S], S]
"""`fold(events, state) -> state`: a domain's events applied in order to a state."""
Decide = Callable[[S], Sequence[object]]
"""`decide(state) -> events`: pure; raises a domain error to refuse."""
Snapshot = Callable[[Any], Awaitable["tuple[S, int] | None"]]
"""`snapshot(conn) -> (state, version)`: a known state to start folding from (a read model
row, say), or None; the stream's events after its version are folded on top."""


@dataclasses.dataclass(frozen=True, slots=True)
class Retry:
    """How often a decision is taken again after losing a race, and how long to wait in
    between: full jitter, doubling from `base_delay` up to `max_delay` seconds."""

    attempts: int = 10
    base_delay: float = 0.002
    max_delay: float = 0.05

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a write needs at least one attempt")

    async def pause(self, attempt: int) -> None:
        await asyncio.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A stream folded: its state, its version, and the events read to get there (those
    after the snapshot, when there was one)."""

    state: S
    version: int
    recorded: tuple[RecordedEvent, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Executed(Generic[S]):
    """What a write did: the state it decided on, the state after, what it appended."""

    before: Loaded[S]
    state: S
    events: tuple[object, ...]
    appended: AppendResult | None

    @property
    def position(self) -> Position | None:
        """Where the events landed in the global log (None: nothing was appended), for a
        read-your-writes wait on a projection."""
        return None if self.appended is None else self.appended.position

    @property
    def version(self) -> int:
        return self.before.version if self.appended is None else self.appended.version


REMEMBERED = 10_000
"""How many streams' states an event store keeps for aggregates that remember."""


def remember(store: EventStore, stream_id: str, fold: Fold[S], state: S, version: int) -> None:
    """Note that `stream_id`, folded by `fold`, was `state` at `version` (committed)."""
    known = store.remembered
    known.pop(stream_id, None)
    known[stream_id] = (fold, state, version)
    if len(known) > REMEMBERED:
        del known[next(iter(known))]  # the least recently noted


def recall(store: EventStore, stream_id: str, fold: Fold[S]) -> Loaded[S] | None:
    """What `remember` noted of `stream_id` for `fold`, if anything."""
    entry = store.remembered.get(stream_id)
    if entry is None or entry[0] is not fold:
        return None
    return Loaded(entry[1], entry[2])


async def load(
    store: EventStore,
    stream_id: str,
    fold: Fold[S],
    initial: S,
    *,
    snapshot: Snapshot[S] | None = None,
    conn: Any = None,
    remembers: bool = False,
) -> Loaded[S]:
    """`stream_id` folded from `initial` (or from `snapshot`'s state and version).
    `remembers`: outside a caller's transaction, note the result for the next write
    (what is read there is committed); inside one, start from the state remembered of
    the stream, if any (only the events after it are read, as after a snapshot)."""
    state, version = initial, 0
    remembered = recall(store, stream_id, fold) if remembers and conn is not None else None
    if remembered is not None:
        state, version = remembered.state, remembered.version
    elif snapshot is not None:
        known = await snapshot(conn)
        if known is not None:
            state, version = known
    recorded = await store.read_stream(stream_id, after_version=version, conn=conn)
    if recorded:
        state = fold((e.data for e in recorded if not isinstance(e.data, Dropped)), state)
        version = recorded[-1].stream_version
    if remembers and conn is None:
        remember(store, stream_id, fold, state, version)
    return Loaded(state, version, tuple(recorded))


async def execute(
    store: EventStore,
    stream_id: str,
    decide: Decide[S],
    *,
    fold: Fold[S],
    initial: S,
    metadata: Metadata | None = None,
    event_ids: Sequence[uuid.UUID] | None = None,
    snapshot: Snapshot[S] | None = None,
    conn: Any = None,
    retry: Retry = Retry(),
    remembers: bool = False,
) -> Executed[S]:
    """Decide on the current state of `stream_id` and append what was decided.

    Raises what `decide` raises, and `ConcurrencyError` when the stream kept changing for
    `retry.attempts` tries. `event_ids` fixes the ids of the events (a write that must
    happen once: a second one is a `DuplicateEventError`). With `conn` every read and the
    append run in the caller's transaction, and a lost race is not retried in it: the
    `ConcurrencyError` comes out for the caller to try again in a new transaction.

    Writes to one stream from one process (outside a caller's transaction) take turns, so
    they do not lose races to each other and load, decide and append again; the version
    check still settles races with other processes. `remembers`: start from the state
    this process last knew, without reading (the module's docstring says when).
    """
    turn: contextlib.AbstractAsyncContextManager[None] = (
        _turn(store, stream_id) if conn is None else contextlib.nullcontext()
    )
    async with turn:
        if remembers and conn is None:
            done = await _on_remembered(store, stream_id, decide, fold, metadata, event_ids)
            if done is not None:
                return done
        executed = await _execute(
            store,
            stream_id,
            decide,
            fold,
            initial,
            metadata,
            event_ids,
            snapshot,
            conn,
            retry,
            remembers,
        )
        if remembers and conn is None and executed.appended is not None:
            remember(store, stream_id, fold, executed.state, executed.version)
        return executed


async def _on_remembered(
    store: EventStore,
    stream_id: str,
    decide: Decide[S],
    fold: Fold[S],
    metadata: Metadata | None,
    event_ids: Sequence[uuid.UUID] | None,
) -> Executed[S] | None:
    """Decide on the remembered state and append at its version, without reading. None
    when that settles nothing (nothing remembered, the decision refuses or records
    nothing, the stream moved on): the write then loads as usual."""
    known = recall(store, stream_id, fold)
    if known is None:
        return None
    try:
        events = tuple(decide(known.state))
    except Exception:
        return None  # perhaps only on this state: decide again on the loaded one
    if not events:
        return None
    try:
        appended = await store.append(
            stream_id, events, known.version, metadata=metadata, event_ids=event_ids
        )
    except ConcurrencyError:
        store.remembered.pop(stream_id, None)
        return None
    state = fold(events, known.state)
    remember(store, stream_id, fold, state, appended.version)
    return Executed(known, state, events, appended)


class _Turn:
    """The writers of one stream in this process: one at a time."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


@contextlib.asynccontextmanager
async def _turn(store: EventStore, stream_id: str) -> AsyncIterator[None]:
    turns = store.turns
    turn = turns.get(stream_id)
    if turn is None:
        turn = turns[stream_id] = _Turn()
    turn.users += 1
    try:
        async with turn.lock:
            yield
    finally:
        turn.users -= 1
        if turn.users == 0:
            del turns[stream_id]


async def _execute(
    store: EventStore,
    stream_id: str,
    decide: Decide[S],
    fold: Fold[S],
    initial: S,
    metadata: Metadata | None,
    event_ids: Sequence[uuid.UUID] | None,
    snapshot: Snapshot[S] | None,
    conn: Any,
    retry: Retry,
    remembers: bool,
) -> Executed[S]:
    for attempt in range(retry.attempts):
        loaded = await load(
            store, stream_id, fold, initial, snapshot=snapshot, conn=conn, remembers=remembers
        )
        events = tuple(decide(loaded.state))
        if not events:
            return Executed(loaded, loaded.state, (), None)
        try:
            appended = await store.append(
                stream_id,
                events,
                loaded.version,
                metadata=metadata,
                event_ids=event_ids,
                conn=conn,
            )
        except ConcurrencyError:
            # Inside a caller's transaction a lost race is the caller's to retry, in a new
            # transaction: this one's id was taken by the losing INSERT, before the events
            # it lost to, and the global log orders by transaction id, so an append retried
            # here would land in the log before events of its own stream it comes after.
            if conn is not None or attempt == retry.attempts - 1:
                raise
            await retry.pause(attempt)
            continue
        return Executed(loaded, fold(events, loaded.state), events, appended)
    raise AssertionError("unreachable")


@dataclasses.dataclass(frozen=True, slots=True)
class Aggregate(Generic[S]):
    """One kind of stream and how to fold it: `load` and `execute` by id, not stream name."""

    category: Category
    fold: Fold[S]
    initial: S
    retry: Retry = Retry()
    remembers: bool = False
    """Keep each stream's last known state for the next write (the module docstring).
    Only for an aggregate whose callers need no `Executed.before.recorded` of a write
    that appended (a write from a remembered state reads no events, or only the newest
    inside a caller's transaction) and whose state holds no personal data."""

    def stream(self, id_: object) -> str:
        return self.category.stream(id_)

    async def load(
        self,
        store: EventStore,
        id_: object,
        *,
        snapshot: Snapshot[S] | None = None,
        conn: Any = None,
    ) -> Loaded[S]:
        return await load(
            store,
            self.stream(id_),
            self.fold,
            self.initial,
            snapshot=snapshot,
            conn=conn,
            remembers=self.remembers,
        )

    def remember(self, store: EventStore, id_: object, executed: Executed[S]) -> None:
        """Note what `executed` (a write in a caller's transaction) left, once that
        transaction has committed."""
        if self.remembers and executed.appended is not None:
            remember(store, self.stream(id_), self.fold, executed.state, executed.version)

    async def execute(
        self,
        store: EventStore,
        id_: object,
        decide: Decide[S],
        *,
        metadata: Metadata | None = None,
        event_ids: Sequence[uuid.UUID] | None = None,
        snapshot: Snapshot[S] | None = None,
        conn: Any = None,
    ) -> Executed[S]:
        return await execute(
            store,
            self.stream(id_),
            decide,
            fold=self.fold,
            initial=self.initial,
            metadata=metadata,
            event_ids=event_ids,
            snapshot=snapshot,
            conn=conn,
            retry=self.retry,
            remembers=self.remembers,
        )

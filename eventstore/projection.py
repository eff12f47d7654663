"""Projections: read models folded from the global log, checkpointed, rebuildable.

A projection is a pure fold `apply(row, event) -> row` over the rows of one table, one row
per key. The same fold drives three modes, so they cannot disagree:

- `ProjectionRunner` applies new events in batches; each batch's row writes and the
  checkpoint commit in one transaction (exactly-once effect).
- `rebuild` (`rebuild.py`) folds the log into a shadow table in bounded memory (stream by
  stream where it can), catches up, and swaps the shadow in under the checkpoint lock;
  reads keep working throughout.
- `replay` folds without writing anything, for debugging.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from . import checkpoints, parked
from .events import START, Dropped, Position, RecordedEvent, Undecodable
from .pg import Conn
from .session import LeadershipLost, Session, leadership, until_lost
from .store import COLUMNS, PostgresEventStore, like_prefix, prefix_range, sorts_bytewise

__all__ = [
    "UNKNOWN",
    "Projection",
    "ProjectionRunner",
    "RetryResult",
    "Row",
    "Watched",
    "Written",
    "projections",
    "read_stream_lenient",
    "register_projection",
    "replay",
    "retry_parked",
]

log = logging.getLogger(__name__)

Row = dict[str, Any]

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.QueryCanceledError,
)
"""Trouble with the database, not with an event: the runner retries the whole batch later."""


class Projection(abc.ABC):
    """A read model: table `table`, primary key column `key`, rows folded from events.

    The table itself is created by a migration; a rebuild copies its definition.
    """

    name: ClassVar[str]
    table: ClassVar[str]
    key: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    categories: ClassVar[frozenset[str] | None] = None
    """Stream categories whose event data this model reads (None: all). Events of other
    categories reach `key_of` with `data` None, undecoded."""
    version: ClassVar[int] = 1
    """The version of the rows. Bump it (with `ddl`) when they change shape: this code then
    builds the next table beside the live one, keeps both up to date, and
    `microshop projections promote NAME` swaps the new one in (`eventstore.versions`)."""
    ddl: ClassVar[str | None] = None
    """This version's CREATE TABLE and CREATE INDEX statements, `{table}` standing for the
    table's name (index and constraint names must start with it). Needed from version 2
    on; version 1's table comes from a migration."""
    reads_metadata: ClassVar[bool] = True
    """Whether `apply` or `fold_stream` look at `event.metadata`. A model that does not
    says so (False): a stream-by-stream rebuild then reads its events without metadata
    (they come with empty `Metadata`), about a third less for Postgres to send."""
    keyed_by_stream: ClassVar[bool] = False
    """Every row is made by the events of one stream alone, no two streams make the same
    row, and only streams of `categories` make rows (any stream's, when `categories` is
    empty): then a rebuild folds the log stream by stream (`fold_stream`), its fastest
    way, instead of in log order."""

    @abc.abstractmethod
    def key_of(self, event: RecordedEvent) -> Any | None:
        """The key of the row `event` changes, or None when it does not concern this model."""

    @abc.abstractmethod
    def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
        """The row after `event` (None: no row). May change and return `row` itself."""

    def fold(self, state: dict[Any, Row | None], events: Iterable[RecordedEvent]) -> set[Any]:
        """Apply `events` to `state` (key -> row) in order; return the keys changed."""
        changed: set[Any] = set()
        key_of, apply = self.key_of, self.apply
        for event in events:
            if isinstance(event.data, Dropped):
                continue  # an upcaster turned the stored event into nothing
            key = key_of(event)
            if key is not None:
                state[key] = apply(state.get(key), event)
                changed.add(key)
        return changed

    def fold_stream(self, events: list[RecordedEvent]) -> dict[Any, Row | None]:
        """The rows one whole stream's events make (key -> row, None: no row), from none.

        Only for a projection `keyed_by_stream`. Must equal `fold` from an empty state;
        override it where folding a stream at once is cheaper than event by event.
        """
        state: dict[Any, Row | None] = {}
        self.fold(state, events)
        return state


@dataclasses.dataclass(frozen=True, slots=True)
class Written:
    """What a runner wrote for a watched row: a copy of it (None: it deleted the row)."""

    row: Row | None


class _Unknown:
    """The watched row may have changed, by a write this runner did not make: read it."""

    __slots__ = ()


UNKNOWN = _Unknown()
Watched = Written | _Unknown


def _copy(row: Row | None) -> Row | None:
    return None if row is None else dict(row)


projections: dict[str, Projection] = {}
"""Every projection this process knows, by name (what the CLI can show and rebuild)."""


def register_projection(projection: Projection) -> Projection:
    projections[projection.name] = projection
    return projection


# -- writing rows ------------------------------------------------------------------------


def _upsert_sql(projection: Projection, table: str) -> str:
    cols = projection.columns
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != projection.key)
    placeholders = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({projection.key}) {conflict}"
    )


async def load_rows(
    conn: Conn, projection: Projection, table: str, keys: list[Any]
) -> dict[Any, Row | None]:
    rows = await conn.fetch(
        f"SELECT {', '.join(projection.columns)} FROM {table} WHERE {projection.key} = ANY($1)",
        keys,
    )
    return {r[projection.key]: dict(r) for r in rows}


async def write_rows(
    conn: Conn,
    projection: Projection,
    table: str,
    state: dict[Any, Row | None],
    keys: Iterable[Any],
) -> None:
    upserts, deletes = [], []
    for key in keys:
        row = state.get(key)
        if row is None:
            deletes.append(key)
        else:
            upserts.append(tuple(row[c] for c in projection.columns))
    if deletes:
        await conn.execute(f"DELETE FROM {table} WHERE {projection.key} = ANY($1)", deletes)
    if upserts:
        await conn.executemany(_upsert_sql(projection, table), upserts)


# -- incremental -------------------------------------------------------------------------


CHECKPOINTS_CHANNEL = "microshop_checkpoints"
"""Where a leading runner announces its read model's new position and the rows changed."""
FOLLOWERS_CHANNEL = "microshop_followers"
"""Where a following runner says hello (its projection's name) every `HELLO_INTERVAL`
seconds (the first after one poll). A writing runner announces only until `FOLLOWED_FOR`
seconds after the last hello it heard (and in its first 1.5 `HELLO_INTERVAL`s): one replica
alone sends nothing."""
HELLO_INTERVAL = 5.0
FOLLOWED_FOR = 15.0


class ProjectionRunner:
    """Keeps one projection's table up to date with the global log.

    One runner per projection leads at a time (`microshop.workers` runs `run` under the
    projection's leader lock); the others `follow`: they track the checkpoint the leader
    announces after every batch (NOTIFY on `CHECKPOINTS_CHANNEL` while followers say hello
    on `FOLLOWERS_CHANNEL`; polled too), so
    read-your-writes (`wait_for`) and row watchers (`watch`) work on every replica. Should
    two runners write at once anyway (a lock lost a moment too late, a rebuild), the
    checkpoint row lock makes them take turns, and a runner that finds the checkpoint moved
    (by a peer or a rebuild) continues from there.

    A batch with nothing for this read model costs no transaction: the runner only notes
    how far it has read, and stores that progress at most every `save_interval` seconds
    (or with its next real batch), so every reader of the log does not commit for every
    event of every other category.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projection: Projection,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        save_interval: float = 0.5,
        apply_attempts: int = 3,
        retry_delay: float = 0.05,
        heartbeat_interval: float = 5.0,
        followed_for: float = FOLLOWED_FOR,
    ) -> None:
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.save_interval = save_interval
        self.apply_attempts = apply_attempts
        self.retry_delay = retry_delay
        self.heartbeat_interval = heartbeat_interval
        self.followed_for = followed_for
        self.version = projection.version  # of the rows it writes (checked at every lock)
        self.parked = 0  # events this runner parked
        self._beat_at = 0.0
        self.position = START  # applied (or found irrelevant) up to here
        self.held_back = False  # the last read saw committed events behind the fence
        self._checkpoint = START  # what the checkpoint row held when we last wrote or read it
        self._saved_at = 0.0
        self._loaded = False
        self._waiting: list[tuple[Position, asyncio.Future[None]]] = []  # for wait_for
        self._watchers: dict[str, set[asyncio.Future[Watched]]] = {}  # by str(key)
        self._announcing: asyncio.Task[None] | None = None
        self._announced: tuple[Position, set[str] | None] | None = None  # to send
        self.leading = False  # set by whoever runs `run` under the leader lock
        self._followed_until = float("inf")  # announce until `run` knows better

    async def catch_up(self) -> int:
        """Apply everything up to the fence; return how many events were read.

        The stored checkpoint is read on the first call only: afterwards a move (a peer's,
        a rebuild's, or back, after a crash forgot the last asynchronous commits) shows
        when this runner next locks it to write or to save progress; a move back or past
        our position makes it re-read from the stored checkpoint.
        """
        if not self._loaded:
            stored = await checkpoints.load(self.store.pool, self.projection.name)
            self._loaded = True
            if stored != self._checkpoint:  # a peer or a rebuild wrote meanwhile
                await self._adopt(stored)
        read = 0
        categories = self.projection.categories
        while True:
            page = await self.store.read_page(
                self.position, limit=self.batch_size, categories=categories
            )
            self.held_back = page.held_back
            batch = self.store.decode_rows(page.rows, categories, lenient=True)
            if batch:
                read += len(batch)
                await self._apply(batch)
            # a short page read everything up to the fence: done, unless the checkpoint
            # moved under the batch (the runner then continues from where it moved)
            if batch and (page.full or self.position != batch[-1].position):
                continue
            await self._save_progress()
            return read

    async def run(self) -> None:
        """Follow the log forever (cancel to stop)."""
        categories = self.projection.categories
        watcher = self.store.watcher(poll_interval=self.poll_interval, categories=categories)
        session = self.store.session
        self._followed_until = self._until_hellos()
        try:
            if session is not None:
                await session.listen(FOLLOWERS_CHANNEL, self._heard_follower)
            async with watcher:
                while True:
                    seen = watcher.generation
                    try:
                        await self.catch_up()
                        await self._beat()
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.warning("projection %s: %s; retrying", self.projection.name, exc)
                        self._loaded = False
                        await asyncio.sleep(self.poll_interval)
                        continue
                    await watcher.settle(seen, behind_fence=self.held_back)
        finally:
            self.store.forget(watcher)
            if session is not None:
                session.unlisten(FOLLOWERS_CHANNEL, self._heard_follower)

    async def wait_for(self, position: Position, timeout: float = 5.0) -> None:
        """Until this runner has applied `position` (read-your-writes for the owner)."""
        if self.position >= position:
            return
        future = asyncio.get_running_loop().create_future()
        waiter = (position, future)
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def watch(self, key: Any) -> asyncio.Future[Watched]:
        """A future done once this runner next writes the row `key` (or the read model
        moves under it: a peer's batch, a rebuild). Register before reading the row, then
        await: a change in between is not missed. Cancel it when giving up.

        Its result is `Written` (a copy of the row this runner wrote, None: deleted) when
        this runner wrote it, `UNKNOWN` when the row may have changed otherwise (read
        it)."""
        future: asyncio.Future[Watched] = asyncio.get_running_loop().create_future()
        name = str(key)
        self._watchers.setdefault(name, set()).add(future)
        future.add_done_callback(lambda f: self._unwatch(name, f))
        return future

    def _unwatch(self, key: str, future: asyncio.Future[Watched]) -> None:
        waiting = self._watchers.get(key)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self._watchers[key]

    def _changed(
        self, keys: Iterable[Any] | None, rows: dict[Any, Row | None] | None = None
    ) -> None:
        """Wake the watchers of `keys` (None: everyone's), with the rows this runner
        wrote for them when it gives `rows` (key -> row)."""
        if not self._watchers:
            return
        targets: list[tuple[str, Watched]]
        if keys is None:
            targets = [(key, UNKNOWN) for key in self._watchers]
        else:
            targets = [
                (str(key), UNKNOWN if rows is None else Written(_copy(rows.get(key))))
                for key in keys
            ]
        for key, result in targets:
            for future in list(self._watchers.get(key, ())):
                if not future.done():
                    future.set_result(result)

    # -- leading and following ------------------------------------------------------------

    async def lead_or_follow(
        self,
        work: Callable[[], Awaitable[None]] | None = None,
        *,
        lock_interval: float = 1.0,
        on_follow: Callable[[], None] | None = None,
    ) -> None:
        """Of every runner of this projection (and version) across processes, one leads:
        wait as a follower (`follow`) until this process holds the projection's leader
        lock, then run `work()` (default: `run`) until the lock is lost (follow again) or
        `work` ends (return) or fails (raise). Without a session connection every runner
        runs (they take turns on the checkpoint lock)."""
        work = work or self.run
        session = self.store.session
        if session is None:
            await work()
            return
        key = f"projection:{self.projection.name}:v{self.version}"
        name = self.projection.name

        async def following() -> None:
            if on_follow is not None:
                on_follow()
            await self.follow()

        while True:
            async with leadership(
                session, key, interval=lock_interval, while_waiting=following
            ) as lost:
                self.leading = True
                log.info("projection %s: leading", name)
                try:
                    await until_lost(lost, work())
                    return
                except LeadershipLost:
                    log.warning("projection %s: lost the leader lock; following", name)
                finally:
                    self.leading = False

    # -- followers ------------------------------------------------------------------------

    async def follow(self) -> None:
        """As a standby (forever; cancel to stop): track the checkpoint the leader moves, so
        that `wait_for` and `watch` work here too. Hears the leader's announcements and
        reads the checkpoint every `poll_interval` besides (a rebuild's swap, a lost
        notification)."""
        self._loaded = False  # whoever leads next reads the stored checkpoint first
        session = self.store.session
        poll = asyncio.Event()

        def heard(payload: str | None) -> None:
            if payload is None:  # (re)connected: look at the checkpoint now
                poll.set()
                return
            announced = _parse_announcement(payload)
            if announced is not None and announced[0] == self.projection.name:
                self._follow_to(announced[1], announced[2])

        if session is not None:
            await session.listen(CHECKPOINTS_CHANNEL, heard)
        try:
            seen_back: Position | None = None
            # the first hello after one poll: a runner that only waits a moment for the
            # lock (every replica's, at start) says none
            hello_at = time.monotonic() - HELLO_INTERVAL + self.poll_interval
            while True:
                if session is not None and time.monotonic() - hello_at >= HELLO_INTERVAL:
                    hello_at = time.monotonic()
                    await self._hello(session)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await poll.wait()
                poll.clear()
                try:
                    stored = await checkpoints.load(self.store.pool, self.projection.name)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.debug("projection %s: following: %s", self.projection.name, exc)
                    continue
                if stored > self.position:
                    self._follow_to(stored, None)
                elif stored < self.position:
                    # a rebuild may move it back; a read racing an announcement may look
                    # back: believe it when the next read says so again
                    if seen_back == stored:
                        self._follow_to(stored, None)
                    seen_back = stored
                else:
                    seen_back = None
        finally:
            if session is not None:
                session.unlisten(CHECKPOINTS_CHANNEL, heard)

    async def _hello(self, session: Session) -> None:
        """Tell the leader this runner follows (it announces only while someone does)."""
        try:
            await session.notify(FOLLOWERS_CHANNEL, self.projection.name)
        except Exception as exc:  # best effort: the leader assumes followers for a while
            log.debug("projection %s: hello failed: %r", self.projection.name, exc)

    def _heard_follower(self, payload: str | None) -> None:
        if payload == self.projection.name:
            self._followed_until = time.monotonic() + self.followed_for
        elif payload is None:  # listening (again): followers may have said hello meanwhile
            self._followed_until = max(self._followed_until, self._until_hellos())

    def _until_hellos(self) -> float:
        """When followers there may be have all said hello (they do every HELLO_INTERVAL)."""
        return time.monotonic() + min(self.followed_for, 1.5 * HELLO_INTERVAL)

    def _follow_to(self, position: Position, keys: Iterable[str] | None) -> None:
        """The leader moved the read model to `position`, changing the rows of `keys`
        (None: any)."""
        if position == self.position:
            return
        self._checkpoint = position
        self._moved_to(position)
        self._changed(keys)

    def _announce(self, position: Position, keys: set[Any] | None) -> None:
        """Tell the followers (other replicas) where the read model is now and which rows
        changed (None: any), soon and coalesced, from the session connection."""
        session = self.store.session
        if session is None or time.monotonic() > self._followed_until:
            return  # no follower said hello lately: nobody to tell
        if self._announced is None:
            names: set[str] | None = set() if keys is not None else None
        else:
            names = self._announced[1]
        if names is not None:
            if keys is None:
                names = None
            else:
                names.update(map(str, keys))
        self._announced = (position, names)
        if self._announcing is None or self._announcing.done():
            self._announcing = asyncio.ensure_future(self._send_announcements(session))

    async def _send_announcements(self, session: Session) -> None:
        while self._announced is not None:
            position, keys = self._announced
            self._announced = None
            payload = _announcement(self.projection.name, position, keys)
            try:
                await session.notify(CHECKPOINTS_CHANNEL, payload)
            except Exception as exc:  # best effort: followers poll the checkpoint too
                log.debug("projection %s: announcing failed: %r", self.projection.name, exc)

    async def _beat(self) -> None:
        if time.monotonic() - self._beat_at >= self.heartbeat_interval:
            await parked.beat(self.store.pool, self.projection.name)
            self._beat_at = time.monotonic()

    def _unreadable(self, event: RecordedEvent) -> bool:
        """An event of this model's categories that this code cannot decode."""
        categories = self.projection.categories
        return isinstance(event.data, Undecodable) and (
            categories is None or event.category in categories
        )

    async def _apply(self, batch: list[RecordedEvent]) -> None:
        """Apply `batch` in one transaction; if an event in it cannot be read or applied,
        apply the batch event by event instead, parking the ones that fail."""
        if not any(self._unreadable(e) for e in batch):
            try:
                await self._apply_batch(batch)
                return
            except _TRANSIENT:
                raise
            except Exception as exc:
                if len(batch) == 1:  # retried and parked below
                    log.info("projection %s: %s", self.projection.name, exc)
        for event in batch:
            if event.position <= self.position:
                continue  # applied already (a peer's batch, or moved past)
            if not await self._apply_one(event):
                return  # the checkpoint moved under us: catch_up re-reads from there

    async def _apply_one(self, event: RecordedEvent) -> bool:
        """Apply one event, retried a few times; park it when it keeps failing. False when
        the checkpoint moved under us (nothing was done)."""
        if self._unreadable(event):
            assert isinstance(event.data, Undecodable)
            return await self._park(event, f"undecodable: {event.data.reason}", 1)
        failure: Exception | None = None
        for attempt in range(1, self.apply_attempts + 1):
            try:
                return await self._apply_batch([event])
            except _TRANSIENT:
                raise
            except Exception as exc:
                failure = exc
                if attempt < self.apply_attempts:
                    await asyncio.sleep(self.retry_delay * attempt)
        assert failure is not None
        error = f"{type(failure).__name__}: {failure}"
        return await self._park(event, error, self.apply_attempts)

    async def _park(self, event: RecordedEvent, error: str, attempts: int) -> bool:
        """Record `event` in `projection_errors` and move the checkpoint past it, in one
        transaction. False when the checkpoint moved under us (nothing was recorded)."""
        name = self.projection.name
        async with self.store.pool.acquire() as conn, conn.transaction():
            stored = await checkpoints.lock(
                conn, name, synchronous_commit=False, version=self.version
            )
            if stored != self._checkpoint and not self._checkpoint < stored <= self.position:
                await self._adopt(stored)
                return False
            await parked.park(conn, name, event, error, attempts)
            await checkpoints.save(conn, name, event.position)
        self.parked += 1
        log.error(
            "projection %s: parked %s %s v%d at %s (event %s): %s",
            name,
            event.stream_id,
            event.event_type,
            event.schema_version,
            event.position,
            event.event_id,
            error,
        )
        self._saved(event.position)
        self._moved_to(event.position)
        self._announce(event.position, set())
        return True

    async def _apply_batch(self, batch: list[RecordedEvent]) -> bool:
        """Apply `batch` in one transaction with its checkpoint; False when the checkpoint
        moved back or ahead under us (nothing was written: catch_up re-reads)."""
        projection, table = self.projection, self.projection.table
        keys = {
            k
            for e in batch
            if not isinstance(e.data, Dropped) and (k := projection.key_of(e)) is not None
        }
        if not keys:  # nothing for this read model
            self._moved_to(batch[-1].position)
            return True
        moved = False
        end = batch[-1].position
        async with self.store.pool.acquire() as conn, conn.transaction():
            # a read model can be re-applied: no waiting for the disk at commit. Usually
            # the checkpoint is where we left it: move it, locked, in one statement.
            advanced = await checkpoints.advance(
                conn,
                projection.name,
                self._checkpoint,
                end,
                version=self.version,
                synchronous_commit=False,
            )
            if not advanced:
                stored = await checkpoints.lock(
                    conn, projection.name, synchronous_commit=False, version=self.version
                )
                if stored != self._checkpoint:
                    if not self._checkpoint < stored <= self.position:
                        # Moved back (a crash forgot our last commits, a rebuild from an
                        # older position) or a peer is ahead: re-read from there, this
                        # batch included.
                        await self._adopt(stored)
                        return False
                    # A peer or a rebuild moved it forward over events we read and found
                    # nothing in for this model: carry on from our position.
                    moved = True
            state = await load_rows(conn, projection, table, list(keys))
            changed = projection.fold(state, batch)
            await write_rows(conn, projection, table, state, changed)
            if not advanced:
                await checkpoints.save(conn, projection.name, end)
        self._saved(end)
        self._moved_to(end)
        self._changed(None if moved else changed, state)
        self._announce(end, None if moved else changed)
        return True

    async def _save_progress(self) -> None:
        """Store how far irrelevant events took us, unless it was stored a moment ago."""
        if self.position == self._checkpoint:
            return
        if time.monotonic() - self._saved_at < self.save_interval:
            return
        position, name = self.position, self.projection.name
        async with self.store.pool.acquire() as conn:  # usually where we left it
            ours = await checkpoints.advance(
                conn,
                name,
                self._checkpoint,
                position,
                version=self.version,
                synchronous_commit=False,
            )
        if not ours:
            async with self.store.pool.acquire() as conn, conn.transaction():
                stored = await checkpoints.lock(
                    conn, name, synchronous_commit=False, version=self.version
                )
                # equal, or moved forward (by a peer's progress) within what we have read
                ours = stored == self._checkpoint or self._checkpoint < stored <= position
                if ours:
                    await checkpoints.save(conn, name, position)
            if not ours:  # moved back, or a peer is ahead: continue from there
                await self._adopt(stored)
                return
        self._saved(position)
        self._announce(position, set())

    def _saved(self, position: Position) -> None:
        self._checkpoint = position
        self._saved_at = time.monotonic()

    async def _adopt(self, stored: Position) -> None:
        """A peer or a rebuild moved the checkpoint: continue from there, and wake every
        watcher (their rows may have changed)."""
        self._checkpoint = stored
        self._moved_to(stored)
        self._changed(None)

    def _moved_to(self, position: Position) -> None:
        """Note the read model's position (ours, a peer's or a rebuild's) and wake waiters."""
        self.position = position
        if self._waiting:
            reached = [w for w in self._waiting if w[0] <= position]
            for waiter in reached:
                self._waiting.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(None)


_MAX_PAYLOAD = 7000  # NOTIFY payloads must stay under 8000 bytes


def _announcement(name: str, position: Position, keys: set[str] | None) -> str:
    """`name<TAB>tx_id<TAB>position<TAB>keys`: keys comma-separated, `*` for any row."""
    head = f"{name}\t{position.tx_id}\t{position.global_position}\t"
    listed = "*" if keys is None else ",".join(sorted(keys))
    unlistable = keys is not None and any("," in k for k in keys)
    if unlistable or len(head) + len(listed) > _MAX_PAYLOAD:
        listed = "*"  # too many (or unlistable) keys: every watcher looks again
    return head + listed


def _parse_announcement(payload: str) -> tuple[str, Position, list[str] | None] | None:
    parts = payload.split("\t")
    if len(parts) != 4:
        return None
    name, tx_id, position, keys = parts
    try:
        at = Position(int(tx_id), int(position))
    except ValueError:
        return None
    return name, at, None if keys == "*" else [k for k in keys.split(",") if k]


_STREAM_ROWS = f"SELECT {COLUMNS} FROM events WHERE stream_id = $1 ORDER BY stream_version"


# -- parked events -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RetryResult:
    """What `retry_parked` did: the events now applied, and those that still fail."""

    applied: list[parked.ParkedEvent]
    failing: list[tuple[parked.ParkedEvent, str]]


async def retry_parked(
    store: PostgresEventStore, projection: Projection, *, event_id: Any = None
) -> RetryResult:
    """Apply `projection`'s parked events (or just `event_id`) again, with this code.

    Each parked event's stream is folded anew, from its first event up to the read model's
    position, and the rows it makes replace theirs: so events of that stream the model
    took while the parked one was missing are folded in the right order too (rows are
    keyed by stream in every MicroShop projection). In one transaction holding the
    checkpoint lock, so no runner writes those rows meanwhile. An event that still cannot
    be read or applied stays parked, with its new error.
    """
    result = RetryResult([], [])
    for entry in await parked.list_parked(store.pool, projection.name, event_id=event_id):
        try:
            async with store.pool.acquire() as conn, conn.transaction():
                position = await checkpoints.lock(conn, projection.name)
                history = [
                    e
                    for e in await store.read_stream(entry.stream_id, conn=conn)
                    if e.position <= position
                ]
                state: dict[Any, Row | None] = {}
                keys = projection.fold(state, history)
                await write_rows(conn, projection, projection.table, state, keys)
                await parked.forget(conn, projection.name, entry.event_id)
        except _TRANSIENT:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await store.pool.execute(
                """UPDATE projection_errors SET error = $3, attempts = attempts + 1, at = now()
                   WHERE projection = $1 AND event_id = $2""",
                projection.name,
                entry.event_id,
                error[:2000],
            )
            result.failing.append((entry, error))
        else:
            result.applied.append(entry)
    return result


# -- replay ------------------------------------------------------------------------------


async def replay(
    store: PostgresEventStore,
    projection: Projection,
    *,
    stream: str | None = None,
    from_position: int | None = None,
    to_position: int | None = None,
    as_of: datetime | None = None,
) -> AsyncGenerator[tuple[RecordedEvent, Any, Row | None], None]:
    """Yield `(event, key, row after it)` for each event the projection folds; writes nothing.

    `stream` limits the replay to one stream. Only events from global position
    `from_position` to `to_position` and recorded at or before `as_of` are yielded; those
    before `from_position` are folded without being yielded, so every row shown is the
    row as it really was. An event of the projection this code cannot read comes as
    `(event, None, None)`, its `data` `Undecodable`: shown, and left out of the fold.
    """
    state: dict[Any, Row | None] = {}
    categories = projection.categories
    first = from_position or 0

    async def batches() -> AsyncGenerator[list[RecordedEvent], None]:
        if stream is not None:
            yield await read_stream_lenient(store, stream)
        else:
            async with contextlib.aclosing(
                store.iter_all(START, categories=projection.categories)
            ) as log:
                async for batch in log:
                    yield batch

    def wanted(event: RecordedEvent) -> bool:
        return (to_position is None or event.global_position <= to_position) and (
            as_of is None or event.recorded_at <= as_of
        )

    async with contextlib.aclosing(batches()) as each:
        async for batch in each:
            for event in batch:
                if not wanted(event):
                    continue
                if isinstance(event.data, Undecodable) and (
                    categories is None or event.category in categories
                ):
                    if event.global_position >= first:
                        yield event, None, None
                    continue
                if isinstance(event.data, Dropped):
                    continue
                key = projection.key_of(event)
                if key is None:
                    continue
                state[key] = row = projection.apply(state.get(key), event)
                if event.global_position >= first:
                    yield event, key, None if row is None else dict(row)


async def read_stream_lenient(store: PostgresEventStore, stream: str) -> list[RecordedEvent]:
    """A stream's events for looking at (not for deciding): an event this code cannot
    read comes with `Undecodable` data instead of an error."""
    return store.decode_rows(await store.pool.fetch(_STREAM_ROWS, stream), lenient=True)


async def streams_starting(store: PostgresEventStore, prefix: str, limit: int) -> list[str]:
    """Up to `limit` ids of streams that start with `prefix`, in order (`prefix` itself
    first when it is a stream)."""
    if await store.pool.fetchval("SELECT 1 FROM events WHERE stream_id = $1 LIMIT 1", prefix):
        return [prefix]
    found: list[str] = []
    after = ""
    if await sorts_bytewise(store.pool):  # a range of the index: hop from stream to stream
        low, high = prefix_range(prefix)
        while len(found) < limit:
            stream = await store.pool.fetchval(
                "SELECT stream_id FROM events WHERE stream_id >= $1 AND stream_id > $2"
                " AND stream_id < $3 ORDER BY stream_id LIMIT 1",
                low,
                after,
                high,
            )
            if stream is None:
                break
            found.append(after := stream)
        return found
    rows = await store.pool.fetch(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE $1 ORDER BY 1 LIMIT $2",
        like_prefix(prefix),
        limit,
    )
    return [r[0] for r in rows]


async def read_correlated(
    store: PostgresEventStore, correlation_id: str, limit: int
) -> list[RecordedEvent]:
    """Up to `limit` events of one correlation (a request and everything it caused), in
    log order, to look at (an event this code cannot read comes `Undecodable`). It scans
    the log: the correlation id is not indexed, so appends stay cheap."""
    rows = await store.pool.fetch(
        f"SELECT {COLUMNS} FROM events WHERE metadata->>'correlation_id' = $1"
        " ORDER BY tx_id, global_position LIMIT $2",
        correlation_id,
        limit,
    )
    return store.decode_rows(rows, lenient=True)


@contextlib.asynccontextmanager
async def running(runner: ProjectionRunner) -> AsyncIterator[ProjectionRunner]:
    """Run `runner` in the background for the duration of the block."""
    await runner.catch_up()
    task = asyncio.create_task(runner.run(), name=f"projection:{runner.projection.name}")
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""One direct connection per process for what a pooled connection cannot do.

LISTEN, session advisory locks (who leads: the relay, each projection's runner) and NOTIFY
need a session that stays the same. A process keeps exactly one such connection, however
many readers and leaders it runs, so its connection count is its pool plus one; and the
connection can be a direct one where the pool goes through PgBouncer in transaction mode
(which keeps no session).

Guarantees:
- A listener hears every notification sent on its channel while the session is up, and
  is called with `None` after every (re)connection: whatever happened while it was down
  may have happened, so it must look for itself.
- A lock taken with `try_lock` is held until `release()` or until the session is lost;
  `Held.lost` is set the moment this process knows the connection (and so the lock) is
  gone. Postgres frees a dead session's locks when it notices the session is dead: at once
  when the process dies on this host, within the TCP keepalive (`keepalive_idle` +
  `keepalive_interval` * `keepalive_count` seconds) when its host vanishes.
- The connection is checked every `ping_interval` seconds, so one that died silently is
  replaced (and its locks reported lost) within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

__all__ = ["Held", "LeadershipLost", "Listener", "Session", "leadership", "until_lost"]

log = logging.getLogger(__name__)

Listener = Callable[[str | None], None]
"""Called with a notification's payload, or with None after the session (re)connected."""

_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('microshop:' || $1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('microshop:' || $1, 0))"
_CONNECTION_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class LeadershipLost(Exception):
    """The session holding a leader lock went away: whatever the leader did must stop."""


class Held:
    """A session advisory lock this process holds."""

    def __init__(self, session: Session, key: str, lost: asyncio.Event) -> None:
        self.session = session
        self.key = key
        self.lost = lost

    async def release(self) -> None:
        """Give the lock up (nothing to do when the session that held it is gone)."""
        if not self.lost.is_set():
            await self.session.unlock(self.key)


class Session:
    """The process's one session connection to `dsn`; connects on first use and again
    whenever it is lost (backing off up to `max_delay` seconds)."""

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str = "microshop-session",
        ping_interval: float = 5.0,
        keepalive_idle: int = 2,
        keepalive_interval: int = 1,
        keepalive_count: int = 2,
        max_delay: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.ping_interval = ping_interval
        self.max_delay = max_delay
        self._settings = {
            "application_name": application_name,
            # a host that vanishes keeps no lock for long: Postgres probes the socket
            "tcp_keepalives_idle": str(keepalive_idle),
            "tcp_keepalives_interval": str(keepalive_interval),
            "tcp_keepalives_count": str(keepalive_count),
        }
        self._listeners: dict[str, set[Listener]] = {}
        self._conn: asyncpg.Connection[Any] | None = None
        self._lost = asyncio.Event()  # of the current connection; set while there is none
        self._lost.set()
        self._up = asyncio.Event()
        self._busy = asyncio.Lock()  # one statement at a time on the one connection
        self._task: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Future[None]] = set()
        self._held: set[str] = set()  # locks of the current connection (locks are
        # re-entrant within a session: this keeps two holders in one process apart)
        self.connections = 0  # how many times it connected (1 after the first connection)

    @property
    def connected(self) -> bool:
        """Whether the session connection is up: every channel listened to is heard."""
        return self._conn is not None

    # -- listening ------------------------------------------------------------------------

    async def listen(self, channel: str, listener: Listener) -> None:
        """Call `listener` with every notification on `channel`, and with None once the
        channel is listened to (now if the session is connected, else when it connects)
        and after every reconnection: the caller may have missed something meanwhile.
        None means that from then on no notification is missed."""
        self._ensure_running()
        self._listeners.setdefault(channel, set()).add(listener)
        conn = self._conn
        if conn is None:
            return  # `_keep` listens to every channel once connected, then says None
        try:
            async with self._busy:
                await conn.add_listener(channel, self._dispatch)  # once per channel
        except _CONNECTION_ERRORS as exc:
            self._drop(conn, exc)
            return
        if self._conn is conn:
            listener(None)

    def unlisten(self, channel: str, listener: Listener) -> None:
        """Stop calling `listener` (the channel stays listened to while the session lives)."""
        listeners = self._listeners.get(channel)
        if listeners is not None:
            listeners.discard(listener)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        for listener in list(self._listeners.get(channel, ())):
            listener(payload if isinstance(payload, str) else None)

    # -- locks and statements -------------------------------------------------------------

    async def try_lock(self, key: str) -> Held | None:
        """Take the session advisory lock `key` if it is free (None if another session
        holds it, or there is no connection now)."""
        conn, lost = await self._connection()
        if conn is None or key in self._held:
            return None
        self._held.add(key)  # before the await: a second taker in this process waits
        asking = asyncio.ensure_future(self._ask_lock(conn, key))
        try:
            taken = await asyncio.shield(asking)
        except asyncio.CancelledError:
            # the server may grant it all the same: then give it straight back
            asking.add_done_callback(lambda done: self._give_back(done, key, lost))
            raise
        except _CONNECTION_ERRORS as exc:
            self._held.discard(key)
            self._drop(conn, exc)
            return None
        if not taken or lost.is_set():
            self._held.discard(key)
            return None
        return Held(self, key, lost)

    async def _ask_lock(self, conn: asyncpg.Connection[Any], key: str) -> bool:
        async with self._busy:
            return bool(await conn.fetchval(_TRY_LOCK, key, timeout=self.ping_interval))

    def _give_back(self, asked: asyncio.Future[bool], key: str, lost: asyncio.Event) -> None:
        """A lock asked for by a caller that was cancelled meanwhile: nobody holds it."""
        granted = not asked.cancelled() and asked.exception() is None and asked.result()
        if granted and not lost.is_set():
            self._releasing.add(asyncio.ensure_future(self.unlock(key)))
            self._releasing = {t for t in self._releasing if not t.done()}
        else:
            self._held.discard(key)

    async def unlock(self, key: str) -> None:
        self._held.discard(key)
        conn = self._conn
        if conn is None:
            return
        try:
            async with self._busy:
                await conn.fetchval(_UNLOCK, key, timeout=self.ping_interval)
        except _CONNECTION_ERRORS as exc:
            self._drop(conn, exc)

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY `channel` (best effort: raises when there is no connection)."""
        conn, _ = await self._connection()
        if conn is None:
            raise ConnectionError("the session connection is down")
        try:
            async with self._busy:
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
        except _CONNECTION_ERRORS as exc:
            self._drop(conn, exc)
            raise

    async def _connection(
        self, wait: float = 2.0
    ) -> tuple[asyncpg.Connection[Any] | None, asyncio.Event]:
        """The connection and its `lost` event, waiting up to `wait` s for one."""
        self._ensure_running()
        if not self._up.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._up.wait()
        return self._conn, self._lost

    # -- keeping the connection -----------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._keep(), name=f"session:{self.application_name}"
            )

    def _drop(self, conn: asyncpg.Connection[Any], exc: BaseException) -> None:
        """`conn` failed: abandon it; `_keep` connects again."""
        log.warning("%s: session connection lost (%s)", self.application_name, exc)
        if self._conn is conn:
            self._forget_connection()
        conn.terminate()

    async def _keep(self) -> None:
        delay = 0.1
        while True:
            conn: asyncpg.Connection[Any] | None = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings=self._settings, timeout=self.max_delay * 2
                )
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                listened: set[str] = set()
                # `listen` may add a channel while this waits: it is not connected yet
                while missing := [c for c in list(self._listeners) if c not in listened]:
                    for channel in missing:
                        await conn.add_listener(channel, self._dispatch)
                        listened.add(channel)
                self._conn, self._lost = conn, lost
                self.connections += 1
                self._up.set()
                delay = 0.1
                for listeners in list(self._listeners.values()):
                    for listener in list(listeners):
                        listener(None)  # anything may have happened while we were away
                await self._watch(conn, lost)
            except _CONNECTION_ERRORS as exc:
                log.debug("%s: cannot connect (%s)", self.application_name, exc)
            finally:
                lost.set()
                if self._conn is conn:
                    self._forget_connection()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    def _forget_connection(self) -> None:
        self._conn = None
        self._up.clear()
        self._lost.set()  # its locks went with it
        self._held.clear()

    async def _watch(self, conn: asyncpg.Connection[Any], lost: asyncio.Event) -> None:
        """Until `conn` is lost: closed by the server, or silent to a ping."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ping_interval):
                    await lost.wait()
            if lost.is_set() or self._conn is not conn:
                return
            try:
                async with self._busy:
                    await conn.fetchval("SELECT 1", timeout=self.ping_interval)
            except _CONNECTION_ERRORS as exc:
                log.warning("%s: session connection silent (%s)", self.application_name, exc)
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn = self._conn
        self._forget_connection()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


@contextlib.asynccontextmanager
async def leadership(
    session: Session,
    key: str,
    *,
    interval: float = 1.0,
    while_waiting: Callable[[], Any] | None = None,
) -> AsyncIterator[asyncio.Event]:
    """Wait until this process holds `key` (trying every `interval` s, running
    `while_waiting()` meanwhile), then lead for the block; yields the lock's `lost` event.
    The lock is given up when the block ends."""
    follower: asyncio.Task[Any] | None = None
    if while_waiting is not None:
        follower = asyncio.ensure_future(while_waiting())
    held: Held | None = None
    try:
        while (held := await session.try_lock(key)) is None:  # noqa: ASYNC110 (a lock elsewhere)
            await asyncio.sleep(interval)
        if follower is not None:
            await _stop(follower)
    except BaseException:
        if follower is not None and not follower.done():
            follower.cancel()
        if held is not None:  # cancelled while the follower stopped: never led
            await held.release()
        raise
    try:
        yield held.lost
    finally:
        await held.release()


async def until_lost(lost: asyncio.Event, work: Any) -> None:
    """Run the awaitable `work` until it ends (its result or error) or `lost` is set
    (then cancel it and raise `LeadershipLost`)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            await _stop(task)
    if task.cancelled():
        raise LeadershipLost("the session holding the leader lock is gone")
    task.result()


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it has ended, whatever it raises. Never swallows the
    caller's own cancellation (suppressing CancelledError around `await task` would, when
    the caller is cancelled while waiting: it would then go on as if nothing happened)."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" warning for what it raised

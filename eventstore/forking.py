"""Work shared between this process and forked ones, for CPU-bound work over the log.

One Python process folds a few hundred thousand events a second at most; a rebuild
on a machine with more cores hands parts of the log to forked copies of itself, each
with its own connections. `share` runs a list of items: this process takes them one at a
time, and so does every forked worker, until none is left; what a worker reports on the
way (progress, an event it could not read) reaches `on_report` here, in order, and an
error in any of them stops them all.

Forked, not spawned: a child starts in a millisecond with everything the parent had
imported and built (the projection, the event registry), and needs nothing pickled but
the items. The child never touches the parent's event loop or connections: it runs a
new loop, ignores Ctrl-C (the parent stops it), and dies with the parent (Linux's
parent-death signal, and a write to a closed pipe everywhere else).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import RemoteError, portable

__all__ = ["Report", "WorkerDied", "peak_memory_kb", "share"]

T = TypeVar("T")

Report = Callable[[Any], None]
"""How a worker tells the parent something (anything picklable)."""

Opener = Callable[[Report], contextlib.AbstractAsyncContextManager[Callable[[T], Awaitable[None]]]]
"""Opens, in a worker, what handles an item (its connections...): `opener(report)`."""


class WorkerDied(RuntimeError):
    """A forked worker ended without saying why (killed, out of memory)."""


def peak_memory_kb() -> int:
    """This process's peak resident memory in kB (`VmHWM`), 0 where unknown."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def share(
    items: list[T],
    local: Callable[[T], Awaitable[None]],
    opener: Opener[T],
    *,
    workers: int,
    on_report: Report,
) -> list[int]:
    """Handle every item of `items`, here (`local`) and in up to `workers` forked
    processes (`opener`'s handler); return the workers' peak memory in kB.

    The first error, here, in a worker or raised by `on_report`, kills the workers,
    cancels the rest and is raised (a worker's exception is pickled over; one that
    cannot be rebuilt here arrives as a `RemoteError` with its type's name and text).
    """
    queue = list(items)
    children: list[_Child[T]] = []
    try:
        for _ in range(min(workers, len(queue) - 1)):
            children.append(_Child.fork(opener, [c.pipe for c in children]))
    except BaseException:
        for child in children:
            child.kill()
        raise
    peaks: list[int] = []

    async def here() -> None:
        while queue:
            await local(queue.pop(0))

    async def there(child: _Child[T]) -> None:
        while queue:
            await child.handle(queue.pop(0), on_report)
        peaks.append(await child.finish())

    tasks = [asyncio.ensure_future(here()), *(asyncio.ensure_future(there(c)) for c in children)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for child in children:  # first: a worker stops writing at once
            child.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return peaks


class _Child(Generic[T]):
    """A forked worker and the pipe to it."""

    def __init__(self, process: multiprocessing.process.BaseProcess, pipe: Any) -> None:
        self.process, self.pipe = process, pipe
        self.messages: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(pipe.fileno(), self._receive)

    @classmethod
    def fork(cls, opener: Opener[T], siblings: list[Any]) -> _Child[T]:
        """A worker; `siblings`: this process's ends of the earlier workers' pipes (the
        new one closes its copies, so that each pipe has one reader and one writer)."""
        here, there = multiprocessing.Pipe()
        context = multiprocessing.get_context("fork")
        process = context.Process(
            target=_work,
            args=(there, opener, os.getpid(), [here, *siblings], type(asyncio.get_running_loop())),
            daemon=True,
        )
        process.start()
        there.close()
        return cls(process, here)

    def _receive(self) -> None:
        try:
            message = self.pipe.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            message = ("died", None)
        except Exception as exc:  # a message that cannot be rebuilt here
            message = ("error", RemoteError(type(exc).__name__, f"a worker's message: {exc}"))
        self.messages.put_nowait(message)

    async def _next(self) -> tuple[str, Any]:
        kind, value = await self.messages.get()
        if kind == "error":
            raise value
        if kind == "died":
            self.process.join(1)
            raise WorkerDied(f"a worker process ended (exit code {self.process.exitcode})")
        return kind, value

    async def handle(self, item: T, on_report: Report) -> None:
        self._send(item)
        while True:
            kind, value = await self._next()
            if kind == "done":
                return
            on_report(value)

    async def finish(self) -> int:
        """Tell the worker there is nothing more; its peak memory in kB."""
        self._send(None)
        kind, value = await self._next()
        assert kind == "exit", kind
        peak: int = value
        return peak

    def _send(self, item: Any) -> None:
        """Send `item`; a worker that is gone says why in its last message (read next)."""
        with contextlib.suppress(OSError):
            self.pipe.send(item)

    def kill(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.pipe.close()


# -- in the forked process -------------------------------------------------------------


def _work(
    pipe: Any,
    opener: Opener[Any],
    parent: int,
    inherited: list[Any],
    loop_type: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The worker: a fresh event loop (of the parent's kind: uvloop's reads the results
    of queries with less CPU) handling the items the parent sends, until None. Nothing it
    raises is printed here (the parent may hold the terminal's locks)."""
    try:
        for end in inherited:  # the parent's ends of the pipes: not this process's
            end.close()
        _detach(parent)
        loop = loop_type()
        loop.run_until_complete(_serve(pipe, opener))
    except BaseException as exc:  # everything goes to the parent
        _send_error(pipe, exc)
        os._exit(1)
    pipe.send(("exit", peak_memory_kb()))
    pipe.close()
    os._exit(0)  # no clean-up of what was inherited: the parent still uses it


async def _serve(pipe: Any, opener: Opener[Any]) -> None:
    async with opener(lambda value: pipe.send(("report", value))) as handle:
        while (item := pipe.recv()) is not None:
            await handle(item)
            pipe.send(("done", None))


def _send_error(pipe: Any, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        pipe.send(("error", portable(exc)))


def _detach(parent: int) -> None:
    """Leave the parent's event loop and signals behind; die with the parent."""
    asyncio.events._set_running_loop(None)  # the fork happened inside the parent's loop
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was set
        os._exit(1)
    gc.freeze()  # what was inherited stays shared with the parent, never collected

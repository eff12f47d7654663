"""`eventstore.forking.share`: work shared with forked processes, for real (no database)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from eventstore.errors import FoldFailed, RemoteError
from eventstore.forking import Report, WorkerDied, share

ROOT = Path(__file__).resolve().parents[2]


def opener_of(
    handle: Callable[[int, Report], Awaitable[None]],
) -> Callable[[Report], contextlib.AbstractAsyncContextManager[Callable[[int], Awaitable[None]]]]:
    @contextlib.asynccontextmanager
    async def opened(report: Report) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        yield lambda item: handle(item, report)

    return opened


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is dead
    except (ProcessLookupError, FileNotFoundError):
        return False


async def test_every_item_is_handled_once_here_or_in_a_worker_and_reports_arrive() -> None:
    handled_here: list[int] = []
    reports: list[Any] = []

    async def here(item: int) -> None:
        handled_here.append(item)
        await asyncio.sleep(0.01)

    async def there(item: int, report: Report) -> None:
        report(("item", item, os.getpid()))
        await asyncio.sleep(0.01)

    peaks = await share(
        list(range(40)), here, opener_of(there), workers=2, on_report=reports.append
    )

    remote = [r[1] for r in reports]
    assert sorted(handled_here + remote) == list(range(40))  # each once, none lost
    assert handled_here and remote  # both sides took some
    assert {r[2] for r in reports} - {os.getpid()}  # in other processes
    assert len(peaks) == 2 and all(p > 0 for p in peaks)


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_a_worker_runs_on_a_loop_of_the_parents_kind(kind: str) -> None:
    async def here(item: int) -> None:
        await asyncio.sleep(0.01)

    async def there(item: int, report: Report) -> None:
        report(type(asyncio.get_running_loop()).__module__.split(".")[0])
        await asyncio.sleep(0.01)

    async def main() -> list[Any]:
        reports: list[Any] = []
        await share(list(range(8)), here, opener_of(there), workers=1, on_report=reports.append)
        return reports

    factory = uvloop.new_event_loop if kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        reports = runner.run(main())
    assert reports and set(reports) == {kind}


async def test_a_workers_error_stops_everything_and_is_raised_here() -> None:
    pids: list[int] = []
    stop_here = asyncio.Event()

    async def here(item: int) -> None:
        await stop_here.wait()  # never set: cancelled when the worker fails

    async def there(item: int, report: Report) -> None:
        report(os.getpid())
        raise KeyError(f"no item {item}")

    with pytest.raises(KeyError, match="no item"):
        await share([1, 2, 3], here, opener_of(there), workers=1, on_report=pids.append)
    assert pids and not alive(pids[0])


async def test_an_error_that_cannot_be_pickled_arrives_as_its_text() -> None:
    class Local(Exception):  # a class pickle cannot find by name
        pass

    async def here(item: int) -> None:
        await asyncio.sleep(3600)

    async def there(item: int, report: Report) -> None:
        raise Local("the worker's own error")

    with pytest.raises(RemoteError, match="the worker's own error") as caught:
        await share([1, 2], here, opener_of(there), workers=1, on_report=print)
    assert caught.value.type_name == "Local"


class Odd(Exception):
    """Pickles (its class is found by name) but cannot be rebuilt from its pickle."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what} because {why}")


async def test_an_error_that_cannot_be_rebuilt_here_arrives_as_its_text() -> None:
    async def here(item: int) -> None:
        await asyncio.sleep(3600)

    async def there(item: int, report: Report) -> None:
        raise FoldFailed("orders", f"stream order-{item}", Odd("no row", "no order"))

    with pytest.raises(FoldFailed) as caught:  # the fold's failure itself, as the CLI says
        await share([1, 2], here, opener_of(there), workers=1, on_report=print)
    assert str(caught.value) == "orders cannot fold stream order-2: Odd: no row because no order"
    assert isinstance(caught.value.error, RemoteError)


async def test_a_worker_that_cannot_start_says_why() -> None:
    refusals = ["no database at 127.0.0.1:1"]  # what the worker's connecting meets

    @contextlib.asynccontextmanager
    async def unreachable(report: Report) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        if refusals:
            raise ConnectionRefusedError(refusals[0])
        yield lambda item: asyncio.sleep(0)

    async def here(item: int) -> None:
        await asyncio.sleep(0.3)

    with pytest.raises(ConnectionRefusedError, match="no database"):
        await share([1, 2, 3], here, unreachable, workers=1, on_report=print)


async def test_a_report_the_parent_refuses_stops_the_workers() -> None:
    pids: list[int] = []

    def refuse(pid: int) -> None:
        pids.append(pid)
        raise ValueError("refused")

    async def here(item: int) -> None:
        await asyncio.sleep(3600)

    async def there(item: int, report: Report) -> None:
        report(os.getpid())
        await asyncio.sleep(3600)

    with pytest.raises(ValueError, match="refused"):
        await share([1, 2], here, opener_of(there), workers=1, on_report=refuse)
    assert not alive(pids[0])


async def test_a_worker_that_dies_is_an_error() -> None:
    async def here(item: int) -> None:
        await asyncio.sleep(3600)

    async def there(item: int, report: Report) -> None:
        os._exit(7)

    with pytest.raises(WorkerDied, match="exit code 7"):
        await share([1, 2], here, opener_of(there), workers=1, on_report=print)


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    """A SIGKILLed parent leaves no worker behind (they would go on writing)."""
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(
        f"""
        import asyncio, contextlib, os, sys
        from eventstore.forking import share

        @contextlib.asynccontextmanager
        async def opened(report):
            async def handle(item):
                open({str(pid_file)!r}, "w").write(str(os.getpid()))
                await asyncio.sleep(3600)
            yield handle

        async def here(item):
            await asyncio.sleep(3600)

        asyncio.run(share([1, 2], here, opened, workers=1, on_report=print))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = threading.Event()
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            deadline.wait(0.05)
        worker = int(pid_file.read_text())
        assert alive(worker)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    for _ in range(100):
        if not alive(worker):
            break
        threading.Event().wait(0.05)
    assert not alive(worker)


def test_a_fold_failure_crosses_to_the_parent_whole() -> None:
    failed = FoldFailed("orders", "stream order-1", ValueError("no such line"))
    again = pickle.loads(pickle.dumps(failed))
    assert (type(again), str(again), again.where) == (FoldFailed, str(failed), failed.where)
    assert isinstance(again.error, ValueError)

"""The process's session connection: notifications, leader locks and their loss, on the
real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore.session import Session, leadership
from tests.conftest import StackEnv


@pytest.fixture
async def sessions(test_env: StackEnv) -> AsyncIterator[list[Session]]:
    """Two processes' session connections (ping every 0.2 s, to notice losses fast)."""
    made = [
        Session(test_env.database_url, application_name=f"test-session-{i}", ping_interval=0.2)
        for i in range(2)
    ]
    yield made
    for session in made:
        await session.close()


async def test_a_listener_hears_notifications_and_is_told_of_every_connection(
    sessions: list[Session], uid: str
) -> None:
    heard: list[str | None] = []
    one, other = sessions
    await one.listen(f"chan_{uid}", heard.append)
    async with asyncio.timeout(10):
        while None not in heard:  # connected: anything may have happened before
            await asyncio.sleep(0.01)
        await other.notify(f"chan_{uid}", "hello")
        while "hello" not in heard:
            await asyncio.sleep(0.01)


async def test_channels_listened_to_while_connecting_are_heard_once_said_so(
    sessions: list[Session], uid: str
) -> None:
    """None tells a listener its channel is listened to: whatever it is told after that
    arrives, also for channels added while the session was still connecting."""
    one, other = sessions
    channels = [f"chan_{uid}_{n}" for n in range(20)]
    heard: dict[str, list[str | None]] = {c: [] for c in channels}

    async def listen_late(n: int, channel: str) -> None:
        for _ in range(n):  # spread over the time the session takes to connect
            await asyncio.sleep(0)
        await one.listen(channel, heard[channel].append)

    await asyncio.gather(*(listen_late(n, c) for n, c in enumerate(channels)))
    async with asyncio.timeout(10):
        for channel in channels:
            while None not in heard[channel]:
                await asyncio.sleep(0.01)
            await other.notify(channel, "hello")
        for channel in channels:
            while "hello" not in heard[channel]:
                await asyncio.sleep(0.01)


async def test_a_lock_is_held_once_across_sessions_and_within_one(
    sessions: list[Session], uid: str
) -> None:
    one, other = sessions
    held = await one.try_lock(f"test:{uid}")
    assert held is not None
    assert await one.try_lock(f"test:{uid}") is None  # a second holder in the same process
    assert await other.try_lock(f"test:{uid}") is None
    await held.release()
    taken = await other.try_lock(f"test:{uid}")
    assert taken is not None and not taken.lost.is_set()


async def test_a_lost_connection_sets_lost_and_frees_the_lock(
    sessions: list[Session], test_env: StackEnv, uid: str
) -> None:
    one, other = sessions
    held = await one.try_lock(f"test:{uid}")
    assert held is not None
    conn = await asyncpg.connect(test_env.database_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            "test-session-0",
        )
    finally:
        await conn.close()
    async with asyncio.timeout(10):
        await held.lost.wait()
        while (taken := await other.try_lock(f"test:{uid}")) is None:
            await asyncio.sleep(0.05)
    assert not taken.lost.is_set()
    async with asyncio.timeout(10):  # and the first reconnects, a follower now
        while one.connections < 2:
            await asyncio.sleep(0.05)
    assert await one.try_lock(f"test:{uid}") is None


async def test_cancelling_a_would_be_leader_is_never_swallowed(
    sessions: list[Session], uid: str
) -> None:
    """Cancelled while its follower winds down, the caller stops: it does not lead."""
    one, _ = sessions
    led = asyncio.Event()

    async def follower() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # a slow goodbye: the caller is cancelled meanwhile
            raise

    async def would_lead() -> None:
        async with leadership(one, f"test:{uid}", while_waiting=follower):
            led.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(would_lead())
    await asyncio.sleep(0.15)  # the lock is taken at once; the follower is being stopped
    task.cancel()
    async with asyncio.timeout(5):
        await asyncio.wait({task})
    assert task.cancelled() and not led.is_set()
    assert await one.try_lock(f"test:{uid}") is not None  # and the lock went back

"""`microshop.app.running_task`: a background task ends with its app, whatever it swallows."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from microshop.app import running_task
from microshop.appkeys import READY_CHECKS


def an_app() -> web.Application:
    app = web.Application()
    app[READY_CHECKS] = []
    return app


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    """Some libraries swallow a cancellation mid-call (aiormq opening a channel did): the
    task carried on and the app's shutdown waited for it for good."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as if a library had caught it and gone on

    async def app_lifetime() -> asyncio.Task[None]:
        async with running_task(an_app(), "stubborn", stubborn) as task:
            await asyncio.sleep(0)  # the task is under way
        return task

    lifetime = asyncio.create_task(app_lifetime())
    done, _ = await asyncio.wait({lifetime}, timeout=15)
    if not done:  # the shutdown waits for good: end it so the test can fail
        lifetime.cancel()
        pytest.fail("the app's shutdown waited for a task that swallowed its cancellation")
    assert lifetime.result().cancelled() and swallowed == 1


async def test_a_task_that_failed_lets_its_error_out_at_the_end() -> None:
    app = an_app()
    seen: list[str | None] = []

    async def failing() -> None:
        raise RuntimeError("broken")

    async def app_lifetime() -> None:
        async with running_task(app, "failing", failing):
            await asyncio.sleep(0.01)
            seen.append(await app[READY_CHECKS][0](app))

    with pytest.raises(RuntimeError, match=r"^broken$"):
        await app_lifetime()
    assert seen == ["failing stopped: RuntimeError('broken')"]  # and not ready meanwhile

"""Stopping a background task for good."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

__all__ = ["cancel_and_wait"]

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended; its own error, if it failed, comes out.

    A library may swallow a cancellation mid-call (aiormq can, while a channel opens), and
    the task then waits on as if never asked: it is asked again every second until it ends.
    """
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=1.0)
        if not task.done():
            log.warning("%s: still running a second after it was cancelled; again", task.get_name())
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

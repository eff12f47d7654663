"""What every `microshop` command shares: the configuration and an event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from ..config import Config, ConfigError

T = TypeVar("T")

__all__ = ["load_config", "run_async"]


def load_config() -> Config:
    """The configuration from the environment; a bad value is one `Error:` line."""
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when it is there."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)

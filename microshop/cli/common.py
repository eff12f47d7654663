"""What every `microshop` command shares: the configuration, an event loop, and failures
told as one `Error:` line.

`Main` is the command group every command runs under: whatever a command lets escape
(the database or RabbitMQ unreachable or refusing, a database not migrated, a port in
use) becomes one line naming the cause and what to do, with every password in it masked,
and exit status 1. `microshop --traceback COMMAND` shows the traceback instead, for a bug.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiormq
import asyncpg
import click

from ..config import Config, ConfigError, redacted

T = TypeVar("T")

__all__ = ["Main", "describe_failure", "load_config", "run_async"]


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


def _database() -> str:
    """DATABASE_URL as configured, masked (or a note that it is not readable)."""
    try:
        return f"DATABASE_URL={redacted(Config.from_env().database_url)}"
    except ConfigError:
        return "DATABASE_URL"


def _broker() -> str:
    try:
        return f"AMQP_URL={redacted(Config.from_env().amqp_url)}"
    except ConfigError:
        return "AMQP_URL"


def describe_failure(exc: BaseException) -> str:
    """One line: what went wrong and what to do about it (passwords masked by the caller)."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return describe_failure(exc.exceptions[0])
    text = f"{exc}".strip() or type(exc).__name__
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{text} ({_database()}): `microshop migrate` creates it"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"the database refused the login ({_database()}): {text}"
    if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
        return f"the database is not migrated ({text}): run `microshop migrate` first"
    if isinstance(exc, asyncpg.PostgresError):
        return f"the database refused: {type(exc).__name__}: {text}"
    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return f"DATABASE_URL is not a usable database URL: {text}"
    if isinstance(exc, aiormq.exceptions.AMQPError):
        return f"cannot use RabbitMQ at {_broker()}: {type(exc).__name__}: {text}"
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError):
        return f"the database connection failed ({_database()}): {text}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"the port is in use: {text}"
    if isinstance(exc, OSError) and exc.filename:  # a file, not a connection
        return f"{exc.strerror or text}: {exc.filename}"
    if isinstance(exc, OSError | TimeoutError):  # refused, reset, no such host, timed out
        return f"cannot reach the database ({_database()}): {type(exc).__name__}: {text}"
    return f"unexpected {type(exc).__name__}: {text} (`microshop --traceback ...` shows where)"


class Misused(click.ClickException):
    """A command given arguments it cannot take: one line, exit status 2 (as click's own)."""

    exit_code = 2


class Main(click.Group):
    """The `microshop` group: every failure of a command leaves as one `Error:` line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a bad argument: one line too, and exit status 2
            where = f" (`{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            raise Misused(_one_line(exc.format_message()) + where) from None
        except click.ClickException as exc:
            one = _one_line(exc.message)
            if one == exc.message:
                raise
            raise click.ClickException(one) from None
        except (click.exceptions.Abort, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (`| head`): nothing to say to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None
        except Exception as exc:
            if ctx.params.get("traceback"):
                raise
            raise click.ClickException(_one_line(describe_failure(exc))) from None


def _one_line(message: str) -> str:
    return redacted(" ".join(part.strip() for part in message.splitlines() if part.strip()))

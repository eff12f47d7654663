"""Shared benchmark machinery: a throwaway database, timed trials in interleaved rounds.

A *trial* is one timed run of something that handles a known number of events; its figure
is events per second. Subject and baseline trials run in the same round, and the order
flips every round, so a noisy neighbour or a warming cache does not favour either side.
Each figure is the median over the rounds; a ratio is the median of the per-round ratios
(each one taken between runs that were seconds apart).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import secrets
import statistics
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg

from microshop.migrate import migrate

__all__ = [
    "LOG_COLUMNS",
    "BenchError",
    "Results",
    "Trial",
    "amqp_url",
    "database_url",
    "info",
    "run_round",
    "scratch_database",
    "unique_name",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

LOG_COLUMNS = (
    "stream_id",
    "stream_version",
    "event_id",
    "event_type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
)
"""The columns of `events` a benchmark COPYs its log into (the database numbers them)."""


class BenchError(Exception):
    """A trial did not do what it was timed for (wrong count, refused message...)."""


def info(message: str) -> None:
    """Progress for the human watching: stderr, so stdout stays one JSON object."""
    print(message, file=sys.stderr, flush=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def database_url(name: str) -> str:
    """`DATABASE_URL` (host, credentials, options) pointed at the database `name`."""
    base = urllib.parse.urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urllib.parse.urlunsplit(base._replace(path=f"/{name}"))


def amqp_url() -> str:
    return os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL


@contextlib.asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """The DSN of a new, migrated database, dropped on exit even if the block fails."""
    dsn = database_url(unique_name(prefix))
    try:
        await migrate(dsn)
        yield dsn
    finally:
        await _drop_database(dsn)


async def _drop_database(dsn: str) -> None:
    name = urllib.parse.unquote(urllib.parse.urlsplit(dsn).path.lstrip("/"))
    admin = await asyncpg.connect(dsn, database="postgres")
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await admin.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Trial:
    """One timed run: `run()` must handle exactly `expected` events and return that count.

    `after` runs untimed once the clock has stopped (verification, cleanup).
    """

    name: str
    run: Callable[[], Awaitable[int]]
    expected: int
    after: Callable[[], Awaitable[None]] | None = None


class Results:
    """Per-round figures (events/s) by name, and their medians."""

    def __init__(self) -> None:
        self.rounds: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> None:
        self.rounds.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def add_ratios(self, subject: str, baseline: str) -> str:
        """Record `subject / baseline` of every round under `{subject}_ratio`; return that name."""
        name = f"{subject}_ratio"
        pairs = zip(self.rounds[subject], self.rounds[baseline], strict=True)
        self.rounds[name] = [s / b for s, b in pairs]
        return name


async def timed(trial: Trial) -> float:
    """Events per second of one run of `trial` (after a full garbage collection)."""
    gc.collect()
    start = time.perf_counter()
    handled = await trial.run()
    elapsed = time.perf_counter() - start
    if trial.after is not None:
        await trial.after()
    if handled != trial.expected:
        raise BenchError(f"{trial.name}: handled {handled} events, expected {trial.expected}")
    return handled / elapsed


async def run_round(results: Results, number: int, trials: Sequence[Trial]) -> None:
    """Run `trials` in order on even rounds and in reverse on odd ones; record each rate."""
    ordered = trials if number % 2 == 0 else list(reversed(trials))
    for trial in ordered:
        rate = await timed(trial)
        results.add(trial.name, rate)
        info(f"  round {number + 1}: {trial.name:<26} {rate:>12,.0f} events/s")

"""What the operator pages work with: a small pool on the event store, the projections and
consumers of the system, and the rebuilds started from the pages.

The gateway itself needs no database (it proxies), so it is built with
`make_app(database=False)` and its `/ready` does not depend on Postgres. The operator pages
get their own small pool here instead: it connects lazily (no connection until an admin
page needs one), so a database that is down turns those pages into a 503 page and leaves
the shop and the API alone. The gateway keeps the `streams` read model (the catalogue of
streams the events pages list) up to date, since these pages are its readers. RabbitMQ is
reached only when the dead-letters page asks, over a short-lived connection per action
(`Consumer.parked()`, `replay_parked()`, `discard_parked()` open their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web

from eventstore import (
    Consumer,
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    create_pool,
    rebuild,
)
from eventstore.pg import Pool
from eventstore.rebuilding import RebuildResult
from microshop.app import application_name, running_task
from microshop.appkeys import CONFIG
from microshop.scaling import ADMIN_POOL_SIZE
from microshop.topology import consumers_for, load_projections

__all__ = [
    "OPERATOR",
    "AlreadyRebuilding",
    "Operator",
    "RebuildJob",
    "Rebuilds",
    "consumers_for",
    "operator_context",
]

log = logging.getLogger(__name__)

POOL_SIZE = ADMIN_POOL_SIZE
STREAMS = "streams"


class AlreadyRebuilding(Exception):
    """A rebuild of this projection is running already."""

    def __init__(self, job: RebuildJob) -> None:
        super().__init__(job.name)
        self.job = job


@dataclasses.dataclass(slots=True)
class RebuildJob:
    """One rebuild started from the projections page, and how far it got."""

    name: str
    started_at: dt.datetime
    total: int = 0
    done: int = 0
    state: Literal["running", "done", "failed"] = "running"
    finished_at: dt.datetime | None = None
    result: RebuildResult | None = None
    error: str | None = None

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return min(99, round(100 * self.done / self.total)) if self.total else 0

    @property
    def seconds(self) -> float:
        end = self.finished_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()


class Rebuilds:
    """Rebuilds run as background tasks, at most one per projection at a time."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.jobs: dict[str, RebuildJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> bool:
        return any(job.state == "running" for job in self.jobs.values())

    def start(self, projection: Projection) -> RebuildJob:
        """Start rebuilding `projection` (what `microshop projections rebuild` does)."""
        current = self.jobs.get(projection.name)
        if current is not None and current.state == "running":
            raise AlreadyRebuilding(current)
        job = RebuildJob(projection.name, started_at=dt.datetime.now(dt.UTC))
        self.jobs[projection.name] = job
        self._tasks[projection.name] = asyncio.create_task(
            self._run(job, projection), name=f"rebuild:{projection.name}"
        )
        return job

    async def _run(self, job: RebuildJob, projection: Projection) -> None:
        try:
            job.total = int(await self.store.pool.fetchval("SELECT count(*) FROM events"))

            def advance(count: int) -> None:
                job.done += count

            job.result = await rebuild(self.store, projection, progress=advance)
            job.done = job.result.events
            job.state = "done"
            log.info(
                "rebuilt %s: %d rows from %d events", job.name, job.result.rows, job.result.events
            )
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled: the gateway stopped"
            raise
        except Exception as exc:
            log.exception("rebuild of %s failed", job.name)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = dt.datetime.now(dt.UTC)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclasses.dataclass(frozen=True, slots=True)
class Operator:
    """The operator pages' resources."""

    pool: Pool
    store: PostgresEventStore
    projections: dict[str, Projection]
    consumers: dict[str, Consumer]
    rebuilds: Rebuilds


OPERATOR = web.AppKey("operator", Operator)


async def operator_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    name = application_name(config, "gateway-admin")
    pool = await create_pool(
        config.database_url,
        application_name=name,
        min_size=0,
        max_size=POOL_SIZE,
        idle_in_transaction_timeout_ms=config.pool_idle_in_transaction_timeout_ms,
        statement_cache_size=config.db_statement_cache_size,
    )
    store = PostgresEventStore(
        pool, dsn=config.session_database_url, application_name=name, pooler=config.behind_pooler
    )
    projections = load_projections()
    rebuilds = Rebuilds(store)
    app[OPERATOR] = Operator(pool, store, projections, consumers_for(config, store), rebuilds)
    runner = ProjectionRunner(store, projections[STREAMS])
    try:
        async with running_task(app, f"projection:{STREAMS}", runner.lead_or_follow):
            yield
    finally:
        await rebuilds.close()
        await store.close()
        await pool.close()

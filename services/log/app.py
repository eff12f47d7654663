"""log-service (port 8006): stores every service's shipped log lines; GET /api/logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from microshop.app import background, make_app, running_task
from microshop.appkeys import CONFIG, METRICS, POOL, READY_CHECKS
from microshop.auth import KeySource
from microshop.config import Config

from .ingest import Ingestor
from .store import delete_older_than
from .views import routes

__all__ = ["RETENTION_INTERVAL", "create_app"]

log = logging.getLogger(__name__)

RETENTION_INTERVAL = 3600.0  # seconds between retention sweeps
INGESTOR = web.AppKey("ingestor", Ingestor)


async def ingest_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    ingestor = Ingestor(
        app[POOL],
        amqp_url=config.amqp_url,
        namespace=config.namespace,
        queue_type=config.amqp_queue_type,
    )
    app[INGESTOR] = ingestor

    async def consuming(_: web.Application) -> str | None:
        return None if ingestor.ready.is_set() else f"{config.namespace}.logs: not consuming"

    app[READY_CHECKS].append(consuming)
    metrics = app[METRICS]
    counters = {
        "stored": metrics.counter("log_lines_stored_total", "Log lines stored."),
        "rejected": metrics.counter(
            "log_lines_rejected_total", "Shipped lines refused (not a JSON object, or bad data)."
        ),
        "batches": metrics.counter("log_batches_stored_total", "Batches of lines committed."),
        "database_retries": metrics.counter(
            "log_store_retries_total", "Batch inserts retried after a database error."
        ),
    }

    async def collect() -> None:
        for name, counter in counters.items():
            counter.set({}, getattr(ingestor.stats, name))

    metrics.collectors.append(collect)
    async with running_task(app, "log-ingest", ingestor.run):
        yield


async def retain(app: web.Application) -> None:
    """Every RETENTION_INTERVAL, drop lines older than LOG_RETENTION_DAYS."""
    days = app[CONFIG].log_retention_days
    while True:
        try:
            deleted = await delete_older_than(app[POOL], days)
        except Exception:
            log.exception("log retention sweep failed; next try in %.0fs", RETENTION_INTERVAL)
        else:
            if deleted:
                log.info("retention: removed %d log lines older than %d days", deleted, days)
        await asyncio.sleep(RETENTION_INTERVAL)


def create_app(config: Config, *, token_keys: KeySource | None = None) -> web.Application:
    contexts = [ingest_context, background("log-retention", retain)]
    return make_app(config, "log", routes=routes, contexts=contexts, token_keys=token_keys)

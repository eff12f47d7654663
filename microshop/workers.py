"""Background workers a service adds to `make_app`: event consumers and projection runners.

Each helper returns a cleanup context that starts the worker with the app, reports it in
`/ready` and `/metrics`, and cancels it cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence

import asyncpg
from aiohttp import web

from eventstore import Consumer, Position, Projection, ProjectionRunner, RetryPolicy, checkpoints
from eventstore.checkpoints import VersionChanged, lag
from eventstore.consumer import Handler, HandlerContext
from eventstore.errors import RebuildInProgress
from eventstore.parked import count_parked
from eventstore.verifying import sample
from eventstore.versions import build_next, keeping, live_columns

from . import context
from .app import CleanupContext, running_task
from .appkeys import CONFIG, METRICS, POOL, READY_CHECKS, STORE
from .tracing import TRACING

__all__ = [
    "CONSUMERS",
    "RUNNERS",
    "consumer_context",
    "projection_context",
    "read_your_writes",
]

log = logging.getLogger(__name__)

CONSUMERS = web.AppKey("consumers", dict[str, Consumer])
RUNNERS = web.AppKey("runners", dict[str, ProjectionRunner])


def consumer_context(
    name: str,
    bindings: Sequence[str],
    handler: Handler,
    *,
    retry: RetryPolicy | None = None,
    prefetch: int = 32,
    accepts: Mapping[str, Collection[int]] | None = None,
) -> CleanupContext:
    """Consume `bindings` of `{ns}.events` into queue `{ns}.{name}` with `handler`, which
    takes the event types and versions in `accepts` (others are parked)."""

    async def context_(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        consumer = Consumer(
            app[STORE],
            amqp_url=config.amqp_url,
            namespace=config.namespace,
            name=name,
            bindings=bindings,
            handler=in_event_context(app, handler),
            retry=retry,
            prefetch=prefetch,
            accepts=accepts,
            queue_type=config.amqp_queue_type,
        )
        app.setdefault(CONSUMERS, {})[name] = consumer

        async def consuming(_: web.Application) -> str | None:
            return None if consumer.ready.is_set() else f"{consumer.queue}: not consuming"

        consuming.__name__ = f"consumer_{name}"
        app[READY_CHECKS].append(consuming)
        metrics = app[METRICS]
        counters = {
            kind: metrics.counter(f"consumer_{kind}_total", f"Events the consumer {kind}.")
            for kind in ("handled", "duplicates", "retried", "parked", "dropped")
        }

        async def collect() -> None:
            for kind, gauge in counters.items():
                gauge.set({"consumer": name}, getattr(consumer.stats, kind))

        metrics.collectors.append(collect)
        async with running_task(app, f"consumer:{name}", consumer.run):
            yield

    return context_


def in_event_context(app: web.Application, handler: Handler) -> Handler:
    """`handler` running in the event's correlation and trace: its log lines carry the
    event's correlation id and event id, the calls it makes and the events it records pass
    them on, and with tracing on it runs in a consumer span."""

    async def handle(ctx: HandlerContext) -> None:
        event = ctx.event
        tokens = (
            context.correlation_id.set(event.metadata.correlation_id),
            context.event_id.set(str(event.event_id)),
            context.request_id.set(None),
            context.traceparent.set(context.valid_traceparent(event.metadata.traceparent)),
        )
        try:
            tracing = app.get(TRACING)
            if tracing is None:
                await handler(ctx)
            else:
                with tracing.span(
                    f"handle {event.event_type}",
                    tracing.kinds.CONSUMER,
                    **{
                        "messaging.message.id": str(event.event_id),
                        "microshop.attempt": ctx.attempt,
                    },
                ):
                    await handler(ctx)
        finally:
            context.traceparent.reset(tokens[3])
            context.request_id.reset(tokens[2])
            context.event_id.reset(tokens[1])
            context.correlation_id.reset(tokens[0])

    return handle


def projection_context(
    projection: Projection,
    *,
    batch_size: int = 500,
    sample_interval: float = 60.0,
    lock_interval: float = 1.0,
) -> CleanupContext:
    """Keep `projection` up to date in the background; `app[RUNNERS][name].wait_for(...)`
    gives the owning service read-your-writes.

    Of all the replicas of the service, one leads (holds the projection's leader lock on
    its session connection) and runs the runner; the others follow the checkpoint it
    announces, so `wait_for` and row watchers work on every replica, and try the lock every
    `lock_interval` seconds: a standby takes over within about that once the leader's
    session is gone.

    An event the projection cannot read or apply is parked by the runner, which goes on;
    a runner that dies anyway is started again with backoff (0.5 s doubling to 30 s), and
    `/ready` reports it only while it is down. Every `sample_interval` seconds a few
    random streams are folded and compared with their rows (`eventstore.verifying.sample`,
    for a projection keyed by stream): drift shows in `projection_sampled_drift_total`.
    """

    async def context_(app: web.Application) -> AsyncIterator[None]:
        runner = ProjectionRunner(app[STORE], projection, batch_size=batch_size)
        app.setdefault(RUNNERS, {})[projection.name] = runner  # until its version is known
        name = projection.name
        metrics = app[METRICS]
        lag_events = metrics.gauge("projection_lag_events", "Events not yet in the read model.")
        lag_seconds = metrics.gauge(
            "projection_lag_seconds", "Age of the oldest event not yet in the read model."
        )
        parked_events = metrics.gauge(
            "projection_parked_events", "Events parked because the projection failed on them."
        )
        restarts = metrics.counter(
            "projection_runner_restarts_total", "Times a projection runner died and restarted."
        )
        leader = metrics.gauge(
            "projection_leader", "1 where this replica runs the projection, 0 where it follows."
        )
        leader.set({"projection": name}, 0)
        down: list[str] = []  # why the runner is down, while it is

        async def collect() -> None:
            behind = await lag(app[POOL], name)
            lag_events.set({"projection": name}, behind.events)
            lag_seconds.set({"projection": name}, behind.seconds)
            parked = await count_parked(app[POOL])
            parked_events.set({"projection": name}, parked.get(name, 0))

        def following() -> None:
            app[RUNNERS][name] = runner  # whatever it was while this replica led

        async def leading() -> None:
            leader.set({"projection": name}, 1)
            try:
                await _run_version(app, runner, batch_size)
            finally:
                leader.set({"projection": name}, 0)

        async def supervised() -> None:
            backoff = 0.5
            while True:
                try:
                    await runner.lead_or_follow(
                        leading, lock_interval=lock_interval, on_follow=following
                    )
                except VersionChanged as exc:  # a promote: carry on as the new version says
                    log.info("projection %s: %s; switching", name, exc)
                except Exception as exc:
                    down[:] = [f"{type(exc).__name__}: {exc}"]
                    restarts.inc({"projection": name})
                    log.exception("projection %s runner died; restarting in %.1fs", name, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    down.clear()

        sampled = metrics.counter(
            "projection_sampled_rows_total",
            "Rows compared with the fold of their stream by the periodic sampled verify.",
        )
        drifted = metrics.counter(
            "projection_sampled_drift_total",
            "Sampled rows that differ from the fold of their stream (run projections verify).",
        )

        async def sampling() -> None:
            while True:
                await asyncio.sleep(sample_interval)
                if not runner.leading:
                    continue  # the leader's replica samples
                if app[RUNNERS][name].version != projection.version:
                    continue  # building the next version: the live table is another's
                try:
                    found = await sample(app[STORE], projection)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("projection %s: sampling failed: %s", name, exc)
                    continue
                sampled.add({"projection": name}, found.rows)
                if found.differing:
                    drifted.add({"projection": name}, len(found.differing))
                    log.error(
                        "projection %s: %d of %d sampled rows differ from the log (keys %s):"
                        " run `microshop projections verify %s`",
                        name,
                        len(found.differing),
                        found.rows,
                        ", ".join(map(str, found.differing[:5])),
                        name,
                    )

        async def runner_up(_: web.Application) -> str | None:
            return f"projection {name} runner restarting after {down[0]}" if down else None

        runner_up.__name__ = f"projection_{name}"
        app[READY_CHECKS].append(runner_up)
        metrics.collectors.append(collect)
        async with running_task(app, f"projection:{name}", supervised):
            if not projection.keyed_by_stream:
                yield
                return
            async with running_task(app, f"projection-sample:{name}", sampling):
                yield

    return context_


async def _run_version(app: web.Application, runner: ProjectionRunner, batch_size: int) -> None:
    """Keep `runner`'s read model up to date as the version of the live table asks.

    This code's version live: one runner. Older: the next version is being built (and
    kept up to date by a runner of its own) while the live table keeps serving, kept up to
    date with the columns both have, until a promote (then `VersionChanged`). Newer: this
    code is retired for this read model and writes nothing (waiting for a promote back,
    should one come)."""
    store, projection = app[STORE], runner.projection
    name = projection.name
    live = await checkpoints.version_of(app[POOL], name)
    if live == projection.version:
        app[RUNNERS][name] = runner
        await runner.run()
        return
    if live > projection.version:
        log.warning(
            "projection %s: version %d is live, this code writes version %d: not writing",
            name,
            live,
            projection.version,
        )
        while await checkpoints.version_of(app[POOL], name) == live:  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(5.0)
        return
    columns = await live_columns(app[POOL], projection.table)
    keeper = ProjectionRunner(store, keeping(projection, columns, live), batch_size=batch_size)
    app[RUNNERS][name] = keeper

    async def build_then_follow() -> None:
        while True:
            try:
                following = await build_next(store, projection)
                break
            except RebuildInProgress:  # another replica builds it: wait for it
                await asyncio.sleep(1.0)
        log.info(
            "projection %s: version %d built beside version %d", name, projection.version, live
        )
        await ProjectionRunner(store, following, batch_size=batch_size).run()

    tasks = [asyncio.ensure_future(keeper.run()), asyncio.ensure_future(build_then_follow())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # raises what ended it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def read_your_writes(
    app: web.Application, projection: str, position: Position | None
) -> bool:
    """Wait until this app's runner of `projection` has applied `position`, so a read right
    after a write sees it. True when it has (or there was nothing to wait for); False after
    READ_YOUR_WRITES_TIMEOUT_SECONDS, logged: the write is committed either way, so the
    caller answers from what the write itself knows, never with an error."""
    if position is None:
        return True
    timeout = app[CONFIG].read_your_writes_timeout_seconds
    try:
        await app[RUNNERS][projection].wait_for(position, timeout=timeout)
    except TimeoutError:
        log.warning("%s read model is not at %s after %.1fs", projection, position, timeout)
        return False
    return True

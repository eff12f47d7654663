"""relay: publishes every committed event to RabbitMQ (one active instance per store).

`/ready` fails while the broker cannot be used: the relay's whole job is publishing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from eventstore import Relay
from eventstore.amqp import broker_problem
from eventstore.checkpoints import lag
from microshop.app import background, make_app
from microshop.appkeys import CONFIG, METRICS, POOL, READY_CHECKS, STORE, ReadyCheck
from microshop.config import Config

RELAY = web.AppKey("relay", Relay)


async def relay_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    relay = app[RELAY] = Relay(app[STORE], config.amqp_url, config.events_exchange)
    metrics = app[METRICS]
    published = metrics.counter("relay_published_events_total", "Events this relay has published.")
    leader = metrics.gauge("relay_leader", "1 while this relay holds the leader lock.")
    lag_events = metrics.gauge("relay_lag_events", "Committed events not yet published.")
    lag_seconds = metrics.gauge("relay_lag_seconds", "Age of the oldest unpublished event.")
    restarts = metrics.counter("relay_restarts_total", "Times the relay resumed after a failure.")

    async def collect() -> None:
        published.set({}, relay.stats.published)
        leader.set({}, int(relay.stats.leader))
        restarts.set({}, relay.stats.restarts)
        behind = await lag(app[POOL], relay.name)
        lag_events.set({}, behind.events)
        lag_seconds.set({}, behind.seconds)

    metrics.collectors.append(collect)
    app[READY_CHECKS].append(broker_check(relay, config.amqp_url))
    yield


def broker_check(relay: Relay, amqp_url: str, *, every: float = 5.0) -> ReadyCheck:
    """Ready while the relay publishes (its channel is open) or, standing by (or between
    two attempts), while the broker it would publish to accepts a connection: asked at
    most every `every` seconds, so probes do not flood the broker with connections."""
    last: list[tuple[float, str | None]] = []

    async def broker(_: web.Application) -> str | None:
        if relay.stats.connected:
            return None
        now = time.monotonic()
        if not last or now - last[0][0] >= every:
            last[:] = [(now, await broker_problem(amqp_url, "relay-ready", timeout=1.5))]
        return last[0][1]

    return broker


async def run_relay(app: web.Application) -> None:
    await app[RELAY].run()


def create_app(config: Config) -> web.Application:
    return make_app(config, "relay", contexts=[relay_context, background("relay", run_relay)])

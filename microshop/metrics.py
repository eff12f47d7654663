"""Prometheus metrics (aioprometheus): one registry per app, RED metrics for every route."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aioprometheus.collectors import Counter, Gauge, Histogram, Registry
from aioprometheus.renderer import render

from eventstore import EventStore
from eventstore.events import category_of

__all__ = ["LATENCY_BUCKETS", "Metrics", "observe_appends", "process_facts"]

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Collector = Callable[[], Awaitable[None]]
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The metrics of one service; `collectors` refresh gauges just before a scrape."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = Registry()
        self.collectors: list[Collector] = []
        self.http_requests = self.counter(
            "http_requests_total", "HTTP requests by method, route template and status."
        )
        self.http_latency = self.histogram(
            "http_request_duration_seconds", "HTTP request latency by method and route."
        )
        observe_process(self)

    def counter(self, name: str, doc: str) -> Counter:
        """The counter `name`: one per app, shared by every worker that reports under it
        (two projections of one service, each with its own label)."""
        found = self.registry.collectors.get(name)
        if isinstance(found, Counter):
            return found
        return Counter(name, doc, const_labels={"service": self.service}, registry=self.registry)

    def gauge(self, name: str, doc: str) -> Gauge:
        """The gauge `name`, shared like `counter`'s."""
        found = self.registry.collectors.get(name)
        if isinstance(found, Gauge):
            return found
        return Gauge(name, doc, const_labels={"service": self.service}, registry=self.registry)

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(
            name,
            doc,
            const_labels={"service": self.service},
            registry=self.registry,
            buckets=buckets,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"  # a label per invented method: no
        self.http_requests.inc({"method": method, "route": route, "status": str(status)})
        self.http_latency.add({"method": method, "route": route}, seconds)

    async def render(self, accept: Sequence[str]) -> tuple[bytes, dict[str, str]]:
        for collect in self.collectors:
            try:
                async with asyncio.timeout(2):
                    await collect()
            except Exception:
                log.exception("metrics collector %r failed", collect)
        return render(self.registry, list(accept))


def observe_appends(metrics: Metrics, store: EventStore) -> None:
    """Event store metrics: appends by stream category and outcome, events, latency."""
    appends = metrics.counter(
        "eventstore_appends_total", "Appends by stream category and outcome (ok, conflict)."
    )
    events = metrics.counter("eventstore_appended_events_total", "Events appended by category.")
    latency = metrics.histogram("eventstore_append_seconds", "Append latency by category.")

    def observe(stream_id: str, count: int, seconds: float, outcome: str) -> None:
        category = {"category": category_of(stream_id)}
        appends.inc({**category, "outcome": outcome})
        latency.add(category, seconds)
        if count:
            events.add(category, count)

    store.append_observers.append(observe)


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_facts() -> dict[str, float]:
    """This process's resident memory, open file descriptors, CPU time and live asyncio
    tasks: the facts a slow leak shows in. Linux reads `/proc/self`; elsewhere the first
    two are left out."""
    facts = {"cpu_seconds": time.process_time()}
    try:
        with open("/proc/self/statm", "rb") as statm:
            facts["resident_bytes"] = int(statm.read().split()[1]) * _PAGE_SIZE
        facts["open_fds"] = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    with contextlib.suppress(RuntimeError):  # no running loop
        facts["asyncio_tasks"] = len(asyncio.all_tasks())
    return facts


def observe_process(metrics: Metrics) -> None:
    """The process metrics Prometheus' client libraries export, by their names, and the
    asyncio tasks alive: a leak shows on the dashboard as a line that keeps rising."""
    exported: dict[str, Gauge | Counter] = {
        "resident_bytes": metrics.gauge(
            "process_resident_memory_bytes", "Resident memory size in bytes."
        ),
        "open_fds": metrics.gauge("process_open_fds", "Number of open file descriptors."),
        "cpu_seconds": metrics.counter(
            "process_cpu_seconds_total", "Total user and system CPU time spent in seconds."
        ),
        "asyncio_tasks": metrics.gauge("python_asyncio_tasks", "asyncio tasks not yet done."),
    }

    async def collect() -> None:
        for name, value in process_facts().items():
            exported[name].set({}, value)

    metrics.collectors.append(collect)


def route_of(request: web.Request) -> str:
    """The route template (`/api/orders/{id}`), never the raw path: bounded label values."""
    info = request.match_info
    resource = info.route.resource
    if info.http_exception is not None or resource is None:
        return "unmatched"
    return resource.canonical

"""order-service's business metrics: orders placed, outcomes, and how long they took."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator

from aiohttp import web
from aioprometheus.collectors import Counter, Histogram

from microshop.appkeys import METRICS, POOL

from .domain import CANCELLED, PAID, PAYMENT_FAILED, PENDING_PAYMENT

__all__ = ["ORDER_METRICS", "OrderMetrics", "order_metrics_context"]

STATUSES = (PENDING_PAYMENT, PAID, PAYMENT_FAILED, CANCELLED)
# From OrderPlaced to an outcome: a payment is milliseconds, retries with backoff seconds.
OUTCOME_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclasses.dataclass(frozen=True, slots=True)
class OrderMetrics:
    placed: Counter
    outcomes: Counter
    time_to_outcome: Histogram

    def settled(self, status: str, placed_at: dt.datetime) -> None:
        """Count the order's new `status` and the time since it was placed."""
        labels = {"status": status}
        self.outcomes.inc(labels)
        elapsed = dt.datetime.now(dt.UTC) - placed_at
        self.time_to_outcome.add(labels, max(elapsed.total_seconds(), 0.0))


ORDER_METRICS = web.AppKey("order_metrics", OrderMetrics)


async def order_metrics_context(app: web.Application) -> AsyncIterator[None]:
    metrics = app[METRICS]
    app[ORDER_METRICS] = OrderMetrics(
        placed=metrics.counter("orders_placed_total", "Orders placed (idempotent replays not)."),
        outcomes=metrics.counter(
            "order_outcomes_total", "Orders reaching PAID, PAYMENT_FAILED or CANCELLED."
        ),
        time_to_outcome=metrics.histogram(
            "order_time_to_outcome_seconds",
            "Seconds from OrderPlaced to PAID, PAYMENT_FAILED or CANCELLED, by status.",
            buckets=OUTCOME_BUCKETS,
        ),
    )
    by_status = metrics.gauge("orders_by_status", "Orders in the read model by status.")

    async def collect() -> None:
        counts = dict.fromkeys(STATUSES, 0)
        for row in await app[POOL].fetch("SELECT status, count(*) FROM orders GROUP BY status"):
            counts[row["status"]] = row["count"]
        for status, count in counts.items():
            by_status.set({"status": status}, count)

    metrics.collectors.append(collect)
    yield

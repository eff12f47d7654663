"""Observability on the real stack: /metrics everywhere, central logs, one correlation id.

The stack logs at INFO (tests/e2e/conftest.py), so every request leaves an access line in
log-service, and the services' own lines carry the correlation id of the order they serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.client import Shop
from tests.e2e.conftest import Stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition (raises on malformed text)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(stack: Stack) -> dict[str, Samples]:
    async with aiohttp.ClientSession() as session:

        async def one(name: str) -> tuple[str, Samples]:
            async with session.get(f"{stack.service_url(name)}/metrics") as resp:
                assert resp.status == 200, name
                assert resp.headers["Content-Type"].startswith("text/plain")
                return name, parse(await resp.text())

        return dict(await asyncio.gather(*map(one, stack.ports)))


async def logs_of(
    http: aiohttp.ClientSession,
    admin: dict[str, str],
    correlation_id: str,
    services: set[str],
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Log lines of `correlation_id`, once lines from every one of `services` are stored."""
    items: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                resp = await http.get(
                    "/api/logs",
                    params={"correlation_id": correlation_id, "limit": "1000"},
                    headers=admin,
                )
                assert resp.status == 200, await resp.text()
                items = (await resp.json())["items"]
                if services <= {i["service"] for i in items}:
                    return items
                await asyncio.sleep(0.2)
    except TimeoutError:
        found = sorted({i["service"] for i in items})
        raise AssertionError(f"lines of {correlation_id} only from {found}") from None


async def test_every_metrics_endpoint_parses_and_counters_move(shop: Shop) -> None:
    before = await scrape(shop.stack)
    me = await shop.customer()
    order = await shop.order(me)
    await shop.until_final(me, order["id"])
    await asyncio.sleep(0.5)  # the relay's and consumers' counters settle after the outcome
    after = await scrape(shop.stack)

    def moved(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    route = {"route": "/api/orders", "method": "POST", "status": "201"}
    assert moved("gateway", "http_requests_total", **route) >= 1
    assert moved("order", "http_requests_total", **route) >= 1
    assert moved("order", "http_request_duration_seconds_count", route="/api/orders") >= 1
    assert moved("order", "orders_placed_total") >= 1
    assert moved("order", "order_outcomes_total", status="PAID") >= 1
    assert moved("order", "order_time_to_outcome_seconds_count", status="PAID") >= 1
    assert moved("order", "eventstore_appends_total", category="order", outcome="ok") >= 2
    assert moved("order", "eventstore_append_seconds_count", category="order") >= 2
    assert moved("payment", "payments_total", outcome="charged") >= 1
    assert moved("payment", "eventstore_appended_events_total", category="payment") >= 2
    assert moved("order-consumer", "consumer_handled_total") >= 1
    assert moved("cart", "consumer_handled_total") >= 1  # the cart empties on OrderPlaced
    assert moved("relay", "relay_published_events_total") >= 4
    assert value(after["order"], "orders_by_status", status="PAID") >= 1
    for service in ("order", "cart", "product"):
        assert any(n == "projection_lag_events" for n, _ in after[service]), service
    assert any(n == "relay_lag_seconds" for n, _ in after["relay"])
    for service, samples in after.items():
        assert any(n == "log_lines_shipped_total" for n, _ in samples), service


async def test_a_demo_error_from_every_service_reaches_log_service(
    stack: Stack, http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    correlation = f"demo-{secrets.token_hex(6)}"
    async with aiohttp.ClientSession() as session:
        for name in stack.ports:
            resp = await session.post(
                f"{stack.service_url(name)}/demo/logs",
                params={"level": "ERROR"},
                # the gateway's own faces the internet: admins only
                headers={"X-Correlation-ID": correlation, **(admin if name == "gateway" else {})},
            )
            assert resp.status == 202, name
    items = await logs_of(http, admin, correlation, set(stack.ports))
    demo = [i for i in items if i.get("demo")]
    assert {i["service"] for i in demo} == set(stack.ports)
    assert {i["level"] for i in demo} == {"ERROR"}
    resp = await http.get(
        "/api/logs",
        params={"correlation_id": correlation, "level": "ERROR", "service": "relay"},
        headers=admin,
    )
    assert [i["message"] for i in (await resp.json())["items"]] == [
        "demo ERROR log line from relay"
    ]


async def test_one_orders_correlation_id_finds_every_service_it_touched(
    shop: Shop, admin: dict[str, str]
) -> None:
    correlation = f"order-{secrets.token_hex(6)}"
    me = await shop.customer()
    order = await shop.order(me, headers={"X-Correlation-ID": correlation})
    assert (await shop.until_final(me, order["id"]))["status"] == "PAID"
    touched = {"gateway", "cart", "order", "order-consumer", "payment"}
    items = await logs_of(shop.http, admin, correlation, touched)
    consumer = [i for i in items if i["service"] == "order-consumer"]
    assert any(order["id"] in i["message"] and i.get("event_id") for i in consumer)
    timeline = await shop.timeline(me, order["id"])
    assert {e["correlation_id"] for e in timeline} == {correlation}


@contextlib.contextmanager
def log_service_paused(stack: Stack) -> Iterator[None]:
    """log-service frozen (SIGSTOP) for the test's duration, then thawed."""
    pid = stack.pids("log")[-1]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_the_shop_works_while_log_service_is_down_and_lines_arrive_later(
    shop: Shop, admin: dict[str, str]
) -> None:
    correlation = f"outage-{secrets.token_hex(6)}"
    me = await shop.customer()
    with log_service_paused(shop.stack):
        order = await shop.order(me, headers={"X-Correlation-ID": correlation})
        assert (await shop.until_final(me, order["id"]))["status"] == "PAID"
    items = await logs_of(shop.http, admin, correlation, {"gateway", "order", "payment"})
    assert any(order["id"] in i["message"] for i in items)

"""Orders per second from POST to PAID, through the gateway, on a running stack.

Run `python -m bench.orders [--quick] [--clients C] [--seconds S]`: one JSON object on
stdout, progress on stderr.

The benchmark starts the whole stack with `microshop up` on free ports over a scratch
database and its own RabbitMQ namespace (payments at rate 1.0, no simulated latency),
creates a product and C customers, then each client loops for S seconds: add to cart,
`POST /api/orders`, then `GET /api/orders/{id}?wait=10` (a long poll: answered as soon as
the order is no longer PENDING_PAYMENT) until it is PAID. The time of one order is from
sending the POST to the answer that shows PAID; the figures are the completed orders per
second over the whole run and the p50/p95/p99 of those times. The clients run on the same
two cores as the stack.

`cpu_ms_per_order` is where the machine's CPU went during the measured window, divided by
the orders completed in it (`bench._procs.CpuBudget`): `machine` is all busy time, then
each service process, the Postgres backends working for each service, the Postgres server's
own processes, RabbitMQ, the benchmark client and `other` (anything else on the machine).
It is printed as a table on stderr too, so that a change shows where it moved the cost.

`work_per_order` is what one order made the shop do, from every service's `/metrics`
before and after the window: HTTP requests served (each hop counted once, by the service
that answered it, the gateway's included), appends and events appended, events the relay
published, and messages consumers handled. `python -m bench.floor` prices each of those
on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import aiormq
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from microshop.config import SERVICE_PORTS
from microshop.topology import CONSUMER_QUEUES

from ._common import amqp_url, info, scratch_database, unique_name
from ._procs import CpuBudget

LONG_POLL = {"wait": "10"}
TARGETS: dict[str, float] = {"orders_per_second": 250, "p99_ms": 250, "cpu_ms_per_order": 8}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def remove_broker_objects(
    namespace: str, consumers: Sequence[str] = tuple(CONSUMER_QUEUES)
) -> None:
    """The exchanges and queues a stack (whose consumers are `consumers`) declared in
    `namespace`, so runs leave none behind."""
    queues = [f"{namespace}.logs"]
    for name in consumers:
        queues += [f"{namespace}.{name}", f"{namespace}.{name}.parking"]
    async with aiormq.connect(amqp_url()) as connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in (f"{namespace}.events", f"{namespace}.logs"):
            await channel.exchange_delete(exchange)


@dataclasses.dataclass(frozen=True, slots=True)
class Stack:
    """A running `microshop up`: its supervisor process, log, ports, gateway and admin."""

    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    admin: dict[str, str]
    database_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"


def start_stack(dsn: str, namespace: str) -> Stack:
    """`microshop up` on free ports over `dsn`, in its own broker `namespace`."""
    ports = dict(zip(SERVICE_PORTS, free_ports(len(SERVICE_PORTS)), strict=True))
    admin = {"email": "bench-admin@microshop.test", "password": secrets.token_urlsafe(12)}
    env = dict(os.environ)
    env.update(
        DATABASE_URL=dsn,
        AMQP_URL=amqp_url(),
        MICROSHOP_NAMESPACE=namespace,
        INTERNAL_API_KEY=secrets.token_urlsafe(24),
        ADMIN_EMAIL=admin["email"],
        ADMIN_PASSWORD=admin["password"],
        PAYMENT_SUCCESS_RATE="1.0",
        PAYMENT_LATENCY_MS="0",
        RATE_LIMIT_PER_MINUTE="10000000",
        NO_COLOR="1",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),  # INFO: every request logs
        **{SERVICE_PORTS[name][0]: str(port) for name, port in ports.items()},
    )
    log = Path(tempfile.mkstemp(prefix="bench-orders-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "microshop", "up", "--skip-migrate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Stack(process, log, ports, admin, dsn)


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@asynccontextmanager
async def stack(dsn: str) -> AsyncIterator[Stack]:
    """The whole stack, running and ready, over the database `dsn`."""
    namespace = unique_name("bench")
    running = await asyncio.to_thread(start_stack, dsn, namespace)
    process, url = running.process, running.url
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(90):
            while process.poll() is None:
                try:
                    async with session.get(f"{url}/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"microshop up exited early; see {running.log}")
        info(f"stack ready at {url} (log: {running.log})")
        yield running
    finally:
        await asyncio.to_thread(stop_stack, process)
        await remove_broker_objects(namespace)  # payments at rate 1.0: no retry queues


async def json_of(resp: aiohttp.ClientResponse, status: int) -> Any:
    body = await resp.json()
    if resp.status != status:
        raise RuntimeError(f"{resp.method} {resp.url}: {resp.status} {body}")
    return body


async def customer(session: aiohttp.ClientSession) -> dict[str, str]:
    login = {"email": f"c-{secrets.token_hex(6)}@bench.test", "password": secrets.token_urlsafe(12)}
    await json_of(await session.post("/api/auth/register", json=login), 201)
    token = await json_of(await session.post("/api/auth/login", json=login), 200)
    return {"Authorization": f"Bearer {token['access_token']}"}


async def shop(
    session: aiohttp.ClientSession, admin: dict[str, str], clients: int
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A product to buy and `clients` logged-in customers (their auth headers)."""
    login = await json_of(await session.post("/api/auth/login", json=admin), 200)
    boss = {"Authorization": f"Bearer {login['access_token']}"}
    product = {"sku": f"BENCH-{secrets.token_hex(3)}", "name": "Benchmark mug", "price": "9.99"}
    created = await json_of(await session.post("/api/products", headers=boss, json=product), 201)
    return created, [await customer(session) for _ in range(clients)]


async def one_order(session: aiohttp.ClientSession, me: dict[str, str], product: str) -> float:
    line = {"product_id": product, "quantity": 1}
    await json_of(await session.post("/api/cart/items", json=line, headers=me), 200)
    started = time.perf_counter()
    order = await json_of(await session.post("/api/orders", headers=me), 201)
    while True:
        seen = await json_of(
            await session.get(f"/api/orders/{order['id']}", params=LONG_POLL, headers=me), 200
        )
        if seen["status"] == "PAID":
            return time.perf_counter() - started
        if seen["status"] != "PENDING_PAYMENT":
            raise RuntimeError(f"order ended {seen['status']}")


WORK = {
    "http_requests": "http_requests_total",
    "appends": "eventstore_appends_total",
    "events_appended": "eventstore_appended_events_total",
    "events_relayed": "relay_published_events_total",
    "messages_consumed": "consumer_handled_total",
}
"""What `work_per_order` counts, from which metric (summed over services and labels)."""


async def work_done(session: aiohttp.ClientSession, ports: dict[str, int]) -> dict[str, float]:
    """The `WORK` counters summed over every service of the stack, now."""
    wanted = {metric: name for name, metric in WORK.items()}
    totals = dict.fromkeys(WORK, 0.0)
    for port in ports.values():
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    totals[wanted[sample.name]] += sample.value
    return totals


async def client_loop(
    session: aiohttp.ClientSession,
    me: dict[str, str],
    product: str,
    until: float,
    times: list[float],
) -> None:
    while time.perf_counter() < until:
        times.append(await one_order(session, me, product))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(clients: int, seconds: float, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    async with scratch_database("microshop_bench_orders") as dsn, stack(dsn) as running:
        connector = aiohttp.TCPConnector(limit=clients * 2)
        async with aiohttp.ClientSession(base_url=running.url, connector=connector) as session:
            product, customers = await shop(session, running.admin, clients)
            info(f"warming up, then {clients} clients for {seconds:.0f} s")
            await asyncio.gather(*(one_order(session, me, product["id"]) for me in customers))
            times: list[float] = []
            budget = CpuBudget(running.process.pid, dsn)
            work_before = await work_done(session, running.ports)
            before = await budget.snapshot()
            until = time.perf_counter() + seconds
            t0 = time.perf_counter()
            await asyncio.gather(
                *(client_loop(session, me, product["id"], until, times) for me in customers)
            )
            elapsed = time.perf_counter() - t0
            cpu = CpuBudget.per_unit(before, await budget.snapshot(), len(times))
            work_after = await work_done(session, running.ports)
    # the scrapes of /metrics themselves are requests too: one per service, after the window
    work_after["http_requests"] -= len(running.ports)
    work = {
        name: round((work_after[name] - work_before[name]) / max(len(times), 1), 2) for name in WORK
    }
    rate = len(times) / elapsed
    info("CPU ms per order:")
    for group, ms in cpu.items():
        info(f"  {group:<28} {ms:6.2f}")
    info("work per order: " + ", ".join(f"{n} {v}" for n, v in work.items()))
    result: dict[str, Any] = {
        "orders_per_second": round(rate, 1),
        "p50_ms": round(percentile(times, 0.50) * 1000, 1),
        "p95_ms": round(percentile(times, 0.95) * 1000, 1),
        "p99_ms": round(percentile(times, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(times) * 1000, 1),
        "cpu_ms_per_order": cpu,
        "work_per_order": work,
        "orders": len(times),
        "clients": clients,
        "seconds": round(elapsed, 1),
        "targets": TARGETS,
        "context": {
            "quick": quick,
            "cpus": os.cpu_count(),
            "long_poll_s": float(LONG_POLL["wait"]),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
    }
    result["meets_targets"] = {
        "orders_per_second": rate >= TARGETS["orders_per_second"],
        "p99_ms": result["p99_ms"] <= TARGETS["p99_ms"],
        "cpu_ms_per_order": cpu["machine"] <= TARGETS["cpu_ms_per_order"],
    }
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 45 s)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=None, help="measured duration")
    args = parser.parse_args(argv)
    clients = args.clients or (16 if args.quick else 32)
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    print(json.dumps(uvloop.run(run(clients, seconds, args.quick)), indent=2))


if __name__ == "__main__":
    main()

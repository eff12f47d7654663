"""Soak: steady order load for minutes, every process sampled, growth flagged.

Run `python -m bench.soak [--minutes N]` (`make bench-soak`): one JSON object on stdout,
progress on stderr, exit status 1 when a process kept growing.

The benchmark starts the whole stack with `microshop up` over a scratch database (as
`bench.orders` does), and C clients place orders through the gateway without pause (add to
cart, `POST /api/orders`, long-poll until PAID). After a warm-up it samples, every
`--interval` seconds: each service process's resident memory and open file descriptors
(from `/proc`, so sampling allocates nothing in them), its live asyncio tasks (from its
`/metrics`), the Postgres connections of each service (`pg_stat_activity` by
application name) and the benchmark client itself. A process whose memory grew by more
than `--max-growth-mb`, or rose steadily (at least three quarters of the steps up) by more
than a fifth of that, is flagged as rising.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from ._common import info, scratch_database
from ._procs import CLIENT, service_processes
from .orders import Stack, one_order, shop, stack

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_mb(pid: int) -> float:
    statm = Path(f"/proc/{pid}/statm").read_text().split()
    return int(statm[1]) * _PAGE_SIZE / 2**20


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def asyncio_tasks(session: aiohttp.ClientSession, port: int) -> int | None:
    """The service's `python_asyncio_tasks` metric (None when it does not answer)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "python_asyncio_tasks":
            return int(family.samples[0].value)
    return None


async def postgres_connections(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT application_name, count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
               GROUP BY 1"""
        )
    finally:
        await conn.close()
    return {(r[0] or "unnamed").removeprefix("microshop-"): r[1] for r in rows}


class Sampler:
    """The series of every process, one sample per call of `sample()`."""

    def __init__(self, running: Stack) -> None:
        self.running = running
        self.pids = service_processes(running.process.pid)
        self.pids[CLIENT] = os.getpid()
        self.t: list[float] = []
        self.series: dict[str, dict[str, list[Any]]] = {
            name: {"rss_mb": [], "fds": [], "tasks": []} for name in self.pids
        }
        self.connections: dict[str, list[int]] = {}
        self.restarted: set[str] = set()
        self.started = time.monotonic()

    async def sample(self, session: aiohttp.ClientSession) -> None:
        current = service_processes(self.running.process.pid)
        self.t.append(round(time.monotonic() - self.started, 1))
        for name, first_pid in list(self.pids.items()):
            pid = first_pid if name == CLIENT else current.get(name, first_pid)
            if pid != first_pid:
                self.restarted.add(name)  # a new process: its series would mislead
                self.pids[name] = pid
            series = self.series[name]
            try:
                series["rss_mb"].append(round(resident_mb(pid), 2))
                series["fds"].append(open_fds(pid))
            except OSError:
                series["rss_mb"].append(None)
                series["fds"].append(None)
            port = self.running.ports.get(name)
            series["tasks"].append(
                len(asyncio.all_tasks())
                if name == CLIENT
                else None
                if port is None
                else await asyncio_tasks(session, port)
            )
        counts = await postgres_connections(self.running.database_url)
        for app in counts.keys() | self.connections.keys():
            seen = self.connections.setdefault(app, [0] * (len(self.t) - 1))
            seen.append(counts.get(app, 0))


def growth(values: Sequence[float | None], limit_mb: float) -> dict[str, Any]:
    """Growth from the first samples to the last, the fitted slope, and the verdict."""
    known = [v for v in values if v is not None]
    if len(known) < 3:
        return {"growth_mb": None, "slope_mb_per_sample": None, "steps_up": None, "rising": False}
    edge = max(1, min(3, len(known) // 4))  # medians of a few at each end: a GC is noise
    grew = statistics.median(known[-edge:]) - statistics.median(known[:edge])
    steps = [b - a for a, b in itertools.pairwise(known)]
    ups = sum(s > 0 for s in steps) / len(steps)
    slope = statistics.linear_regression(range(len(known)), known).slope
    return {
        "growth_mb": round(grew, 2),
        "slope_mb_per_sample": round(slope, 3),
        "steps_up": round(ups, 2),
        "rising": grew > limit_mb or (grew > limit_mb / 5 and ups >= 0.75),
    }


@dataclasses.dataclass(slots=True)
class Tally:
    """What the clients did: counts only, so the benchmark's own memory stays flat."""

    orders: int = 0
    errors: int = 0
    first_errors: list[str] = dataclasses.field(default_factory=list)


async def drive(
    session: aiohttp.ClientSession, me: dict[str, str], product: str, until: float, tally: Tally
) -> None:
    while time.monotonic() < until:
        try:
            await one_order(session, me, product)
            tally.orders += 1
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            tally.errors += 1
            if len(tally.first_errors) < 5:
                tally.first_errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    warmup, measured = args.warmup_minutes * 60, args.minutes * 60
    async with scratch_database("microshop_bench_soak") as dsn, stack(dsn) as running:
        connector = aiohttp.TCPConnector(limit=args.clients * 2 + 4)
        async with aiohttp.ClientSession(base_url=running.url, connector=connector) as session:
            product, customers = await shop(session, running.admin, args.clients)
            tally = Tally()
            until = time.monotonic() + warmup + measured
            clients = [
                asyncio.create_task(drive(session, me, product["id"], until, tally))
                for me in customers
            ]
            info(f"{args.clients} clients; warming up for {warmup:.0f} s")
            await asyncio.sleep(warmup)
            sampler = Sampler(running)
            placed_before = tally.orders
            info(f"sampling every {args.interval:.0f} s for {measured:.0f} s")
            async with aiohttp.ClientSession() as probes:
                while True:
                    await sampler.sample(probes)
                    last = sampler.t[-1]
                    relay = sampler.series.get("relay", {}).get("rss_mb", [None])[-1]
                    info(
                        f"  t={last:>5.0f}s orders={tally.orders - placed_before:>7} "
                        f"errors={tally.errors} relay={relay} MB"
                    )
                    if last + args.interval > measured + 1:
                        break
                    await asyncio.sleep(args.interval)
            elapsed = sampler.t[-1]
            orders = tally.orders - placed_before
            await asyncio.gather(*clients)

    processes: dict[str, Any] = {}
    for name, series in sampler.series.items():
        verdict = growth(series["rss_mb"], args.max_growth_mb)
        fds = [v for v in series["fds"] if v is not None]
        processes[name] = {
            **verdict,
            "restarted": name in sampler.restarted,
            "fds_growth": fds[-1] - fds[0] if fds else None,
            **series,
        }
    flagged = sorted(n for n, p in processes.items() if p["rising"] or p["restarted"])
    return {
        "minutes": args.minutes,
        "warmup_seconds": warmup,
        "interval_seconds": args.interval,
        "clients": args.clients,
        "orders": orders,
        "orders_per_second": round(orders / elapsed, 1) if elapsed else None,
        "errors": tally.errors,
        "first_errors": tally.first_errors,
        "max_growth_mb": args.max_growth_mb,
        "flagged": flagged,
        "t_seconds": sampler.t,
        "processes": processes,
        "postgres_connections": sampler.connections,
        "context": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Prints one JSON object; exits 1 when a process kept growing or restarted.",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="measured duration after the warm-up (default: 10)",
    )
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=1.0,
        help="load before the first sample (default: 1)",
    )
    parser.add_argument(
        "--interval", type=float, default=20.0, help="seconds between samples (default: 20)"
    )
    parser.add_argument(
        "--clients", type=int, default=16, help="concurrent customers placing orders (default: 16)"
    )
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=10.0,
        help="memory a process may gain over the run (default: 10)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0 or args.clients < 1 or args.warmup_minutes < 0:
        parser.error("--minutes and --interval must be positive, --clients at least 1")
    if args.interval * 3 > args.minutes * 60:
        parser.error("--minutes must leave room for at least three samples of --interval")
    result = uvloop.run(run(args))
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["flagged"] else 0)


if __name__ == "__main__":
    main()

"""Rebuilding the real `orders` read model from a log of real order events.

Run `python -m bench.rebuild [--quick] [--orders N]`: one JSON object on stdout, progress on
stderr.

The log is made by the order domain itself (`services.order.domain`: `place`, then
`payment_succeeded` / `payment_failed` / `request_retry` / `cancel` as a shop sees them:
most orders paid at once, some after a failed round, some cancelled, a few still pending),
encoded by the service's registry, and COPYed into a scratch database with the streams
interleaved at random, as a live shop writes them.

Each round rebuilds `orders` in a child process (`eventstore.rebuild` with the workers
`microshop projections rebuild orders` uses by default: one process per CPU, at most 4)
that reports its own time and peak resident memory (`VmHWM`) plus its forked workers'
peaks, summed (an overcount: a forked worker shares most of its pages with its parent),
so the figure is the rebuilding processes', not the benchmark's. The
baseline, in the same round: COPY of the very rows the rebuild produced into a copy of the
table (`LIKE orders INCLUDING ALL`: the same indexes), from a connection of this process.
The rebuilt table is checked against the statuses the generator chose.

Where the time goes: each rebuild's CPU is measured, the rebuilding processes' (the child
and its forked workers, from the kernel's accounting of the processes this one waited
for) and Postgres's (its processes that ended meanwhile: the rebuild's backends), and
`cpu_bound_events_per_second` says how fast this machine could rebuild if that CPU were
spread over every core without a gap. Before the rounds, the same rebuild runs twice
with parts of it stubbed out, once with the fold and COPY left out (`read_decode`:
reading and decoding the log) and once with the COPY left out (`read_decode_fold`), so
the cost of each stage is the difference.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import uvloop

from bench._common import LOG_COLUMNS, BenchError, Results, info, scratch_database
from bench._procs import ended_children_cpu_seconds, parent_of
from eventstore import PostgresEventStore, create_pool, rebuild, registry
from eventstore.forking import peak_memory_kb
from eventstore.rebuilding import Fold, default_workers
from services.order import domain
from services.order.projections import ORDERS

TARGETS = {"events_per_second": 100_000, "max_rss_mb": 250}


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    orders: int
    rounds: int


FULL = Sizes(orders=175_000, rounds=5)
QUICK = Sizes(orders=45_000, rounds=3)


# -- the log -----------------------------------------------------------------------------


def order_story(rng: random.Random, n: int) -> tuple[list[domain.OrderEvent], str]:
    """One order's events as the domain decides them, and the status they end in."""
    order_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    lines = [
        domain.OrderLine(
            f"prod-{rng.randrange(500):04d}",
            f"Product {k}",
            price := Decimal(rng.randrange(100, 20_000)) / 100,
            quantity := rng.randrange(1, 4),
            price * quantity,
        )
        for k in range(rng.randrange(1, 4))
    ]
    events = domain.place(order_id, f"user-{n % 20_000:05d}", lines, "EUR", n % 50 + 1)
    order = domain.fold(events)
    assert order is not None
    luck = rng.random()

    def then(decided: list[domain.OrderEvent]) -> None:
        nonlocal order
        events.extend(decided)
        order = domain.fold(decided, order)
        assert order is not None

    if luck < 0.05:
        return events, domain.PENDING_PAYMENT
    if luck < 0.20:  # declined, then paid in a second round
        then(domain.payment_failed(order, 1, 3, "card declined"))
        then(domain.request_retry(order))
    elif luck < 0.30:  # declined, then given up
        then(domain.payment_failed(order, 1, 3, "card declined"))
        then(domain.cancel(order, "payment failed"))
        return events, domain.CANCELLED
    then(domain.payment_succeeded(order, order.round, 1, str(uuid.uuid4())))
    return events, domain.PAID


def log_records(
    sizes: Sizes, statuses: collections.Counter[str], chunk: int = 20_000
) -> Iterator[list[tuple[Any, ...]]]:
    """The log, in chunks to COPY: orders told in full, their events interleaved at
    random among the orders in flight (a few hundred at a time, as in a live shop)."""
    rng = random.Random(20261203)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    in_flight: list[tuple[str, list[domain.OrderEvent], int]] = []
    records: list[tuple[Any, ...]] = []
    told = written = 0
    while told < sizes.orders or in_flight:
        while told < sizes.orders and len(in_flight) < 500:
            events, status = order_story(rng, told)
            statuses[status] += 1
            in_flight.append((f"order-{events[0].order_id}", events, 0))
            told += 1
        k = rng.randrange(len(in_flight))
        stream, events, done = in_flight[k]
        event = events[done]
        name, version = registry.type_of(event)
        meta = {"correlation_id": str(uuid.uuid4()), "actor": "bench", "service": "order"}
        records.append(
            (
                stream,
                done + 1,
                uuid.uuid4(),
                name,
                version,
                registry.encode(event),
                json.dumps(meta),
                start + timedelta(milliseconds=written),
            )
        )
        written += 1
        if done + 1 == len(events):
            in_flight[k] = in_flight[-1]
            in_flight.pop()
        else:
            in_flight[k] = (stream, events, done + 1)
        if len(records) == chunk:
            yield records
            records = []
    if records:
        yield records


async def populate(dsn: str, sizes: Sizes) -> tuple[int, collections.Counter[str]]:
    """COPY the log in; return its size and the statuses its orders end in."""
    statuses: collections.Counter[str] = collections.Counter()
    conn = await asyncpg.connect(dsn)
    try:
        events = 0
        for records in log_records(sizes, statuses):  # one transaction per chunk
            await conn.copy_records_to_table("events", records=records, columns=LOG_COLUMNS)
            events += len(records)
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return events, statuses


# -- the rounds --------------------------------------------------------------------------


STAGES = ("read_decode", "read_decode_fold", "full")


def rebuild_in_child(
    dsn: str, workers: int, postmaster: int | None, stage: str = "full"
) -> dict[str, Any]:
    """One rebuild in a fresh process (`--child`): its own time and peak memory, and the
    CPU it and Postgres spent."""
    postgres_before = None if postmaster is None else ended_children_cpu_seconds(postmaster)
    argv = ["--child", dsn, "--workers", str(workers), "--stage", stage]
    child = subprocess.run(
        [sys.executable, "-m", "bench.rebuild", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise BenchError(f"the rebuild failed:\n{child.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(child.stdout)
    if postmaster is not None and postgres_before is not None:
        time.sleep(0.2)  # the server reaps the rebuild's backends
        after = ended_children_cpu_seconds(postmaster)
        result["postgres_cpu_seconds"] = None if after is None else after - postgres_before
    return result


def _cpu_seconds() -> float:
    """CPU of this process and of the ones it waited for (a rebuild's forked workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + usage.ru_utime + usage.ru_stime


async def _postmaster(conn: asyncpg.Connection) -> int | None:
    """The pid of the Postgres server when it runs on this machine (else None)."""
    return parent_of(await conn.fetchval("SELECT pg_backend_pid()"))


def _per_100k(figures: dict[str, Any]) -> str:
    postgres = figures["postgres_cpu_seconds_per_100k"]
    return (
        f"{figures['seconds_per_100k']:.2f} s, CPU {figures['python_cpu_seconds_per_100k']:.2f}"
        f" s Python + {'?' if postgres is None else f'{postgres:.2f}'} s Postgres per 100k events"
    )


def cpu_of(run_: dict[str, Any], events: int) -> dict[str, Any]:
    """A rebuild's seconds and CPU seconds per 100,000 events."""
    per = 100_000 / events
    postgres = run_.get("postgres_cpu_seconds")
    return {
        "seconds_per_100k": round(run_["seconds"] * per, 3),
        "python_cpu_seconds_per_100k": round(run_["python_cpu_seconds"] * per, 3),
        "postgres_cpu_seconds_per_100k": None if postgres is None else round(postgres * per, 3),
    }


async def copy_baseline(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> float:
    """Seconds to COPY the rebuilt rows into an empty copy of `orders` (same indexes)."""
    await conn.execute(
        "DROP TABLE IF EXISTS orders_copy; CREATE TABLE orders_copy (LIKE orders INCLUDING ALL)"
    )
    started = time.perf_counter()
    await conn.copy_records_to_table("orders_copy", records=rows, columns=ORDERS.columns)
    return time.perf_counter() - started


async def check_table(conn: asyncpg.Connection, statuses: collections.Counter[str]) -> None:
    rows = await conn.fetch("SELECT status, count(*) FROM orders GROUP BY status")
    found = {r["status"]: r["count"] for r in rows}
    if found != dict(statuses):
        raise BenchError(f"the rebuilt orders hold {found}, the log says {dict(statuses)}")


async def run(sizes: Sizes, quick: bool, workers: int) -> dict[str, Any]:
    started = time.perf_counter()
    results = Results()
    child_runs: list[dict[str, Any]] = []
    stages: dict[str, dict[str, Any]] = {}
    async with scratch_database("microshop_bench_rebuild") as dsn:
        info(f"populating the log: {sizes.orders:,} orders")
        events, statuses = await populate(dsn, sizes)
        info(f"  {events:,} events, orders {dict(statuses)}")
        conn = await asyncpg.connect(dsn)
        try:
            postmaster = await _postmaster(conn)
            for stage in STAGES[:-1]:
                stubbed = rebuild_in_child(dsn, workers, postmaster, stage)
                stages[stage] = cpu_of(stubbed, events)
                info(f"  {stage:>16} only: {_per_100k(stages[stage])}")
            for n in range(sizes.rounds):
                run_ = rebuild_in_child(dsn, workers, postmaster)
                if run_["events"] != events:
                    raise BenchError(f"rebuilt from {run_['events']} of {events} events")
                await check_table(conn, statuses)
                rows = [tuple(r) for r in await conn.fetch(_ROWS)]
                copy = await copy_baseline(conn, rows)
                child_runs.append(run_)
                results.add("python_cpu_seconds", run_["python_cpu_seconds"])
                if run_.get("postgres_cpu_seconds") is not None:
                    results.add("postgres_cpu_seconds", run_["postgres_cpu_seconds"])
                results.add("events_per_second", events / run_["seconds"])
                results.add("max_rss_mb", run_["max_rss_mb"])
                results.add("copy_seconds", copy)
                info(
                    f"  round {n + 1}: rebuild {events / run_['seconds']:>9,.0f} events/s "
                    f"({run_['seconds']:.2f} s, max RSS {run_['max_rss_mb']} MB over "
                    f"{run_['processes']} processes); "
                    f"COPY of its {len(rows):,} rows {copy:.2f} s; "
                    + _per_100k(cpu_of(run_, events))
                )
        finally:
            await conn.close()
    rebuild_seconds = [r["seconds"] for r in child_runs]
    pairs = zip(rebuild_seconds, results.rounds["copy_seconds"], strict=False)
    results.rounds["copy_share"] = [c / r for r, c in pairs]
    out: dict[str, Any] = {
        "events": events,
        "rows": sum(statuses.values()),
        "events_per_second": round(results.median("events_per_second"), 1),
        "max_rss_mb": max(results.rounds["max_rss_mb"]),
        "rebuild_seconds": round(sorted(rebuild_seconds)[len(rebuild_seconds) // 2], 3),
        "copy_baseline_seconds": round(results.median("copy_seconds"), 3),
        "copy_baseline_rows_per_second": round(
            sum(statuses.values()) / results.median("copy_seconds"), 1
        ),
        "copy_share_of_rebuild": round(results.median("copy_share"), 3),
        "targets": TARGETS,
    }
    median = sorted(child_runs, key=lambda r: r["seconds"])[len(child_runs) // 2]
    stages["full"] = cpu_of(median, events)
    out["stages"] = stages
    if median.get("postgres_cpu_seconds") is not None:
        cpu = median["python_cpu_seconds"] + median["postgres_cpu_seconds"]
        out["cpu_bound_events_per_second"] = round(events / (cpu / (os.cpu_count() or 1)), 1)
    out["meets_targets"] = {
        "events_per_second": out["events_per_second"] >= TARGETS["events_per_second"],
        "max_rss_mb": out["max_rss_mb"] <= TARGETS["max_rss_mb"],
    }
    out["rounds"] = {k: [round(v, 3) for v in vs] for k, vs in results.rounds.items()}
    out["context"] = {
        "quick": quick,
        "orders": sizes.orders,
        "workers": workers,
        "statuses": dict(statuses),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return out


_ROWS = "SELECT " + ", ".join(ORDERS.columns) + " FROM orders"


# -- the child ---------------------------------------------------------------------------


def stub_out(stage: str) -> None:
    """Leave the COPY (and, for `read_decode`, the fold) out of this process's rebuilds:
    the stages measured on their own. The swapped-in table is then empty."""
    copy = Fold._copy

    async def no_copy(self: Fold, records: Any, *args: Any, **kwargs: Any) -> None:
        await copy(self, [], *args, **kwargs)

    def no_fold(self: Fold, page: Any, record: Any) -> Any:
        return lambda events: []

    Fold._copy = no_copy  # type: ignore[method-assign]
    if stage == "read_decode":
        Fold._folder = no_fold  # type: ignore[method-assign]


async def child(dsn: str, workers: int, stage: str) -> dict[str, Any]:
    if stage != "full":
        stub_out(stage)
    pool = await create_pool(dsn, min_size=1, max_size=2, application_name="bench-rebuild")
    try:
        store = PostgresEventStore(pool, dsn=dsn)
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = await rebuild(store, ORDERS, workers=workers)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        await store.close()
    finally:
        await pool.close()
    # `VmHWM` of this address space, not `RUSAGE_SELF`'s `ru_maxrss`: Linux carries that
    # over a fork and exec, so a child of the benchmark would report the benchmark's own
    # peak (the rows it holds grow with every round) whenever that is larger
    peak_kb = peak_memory_kb() + sum(result.worker_peaks_kb)
    return {
        "events": result.events,
        "rows": result.rows,
        "seconds": seconds,
        "python_cpu_seconds": cpu,
        "max_rss_mb": round(peak_kb / 1024, 1),
        "processes": 1 + len(result.worker_peaks_kb),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="45,000 orders, 3 rounds (<2 min)")
    parser.add_argument("--orders", type=int, help="orders in the log (default 175,000)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes folding the log (default: as `microshop projections rebuild`, "
        "one per CPU, at most 4)",
    )
    parser.add_argument("--child", metavar="DSN", help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=STAGES, default="full", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.child:
        print(json.dumps(uvloop.run(child(args.child, args.workers, args.stage))))
        return
    sizes = QUICK if args.quick else FULL
    if args.orders:
        sizes = dataclasses.replace(sizes, orders=args.orders)
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    print(json.dumps(uvloop.run(run(sizes, args.quick, args.workers)), indent=2))


if __name__ == "__main__":
    main()

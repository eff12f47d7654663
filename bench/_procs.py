"""The processes of a running stack, and where the machine's CPU went while it ran.

Everything is read from `/proc` (and Postgres's `pg_stat_activity`), so sampling costs the
measured processes nothing. `CpuBudget` takes a snapshot before and after a measured
window and divides each process's CPU time by the work done in between (orders, say):

- each `microshop serve NAME` child of the supervisor, replicas summed under NAME, and the
  supervisor itself (`microshop up`, which prefixes and prints every log line);
- Postgres, split by who the work was for: each service's backends (by application name,
  replicas and session connections included), the server's own processes (WAL writer,
  checkpointer, autovacuum...), and the backends of the benchmark itself;
- RabbitMQ (the Erlang VM and its helpers);
- the benchmark client (this process);
- `other`: the rest of the machine's busy time (`/proc/stat`), i.e. anything else running.

A process that starts inside the window counts from zero; one that ends inside it loses
its share to `other`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import asyncpg

__all__ = [
    "CLIENT",
    "CpuBudget",
    "Snapshot",
    "children",
    "ended_children_cpu_seconds",
    "machine_busy_seconds",
    "parent_of",
    "service_processes",
]

CLIENT = "bench-client"
_TICKS = os.sysconf("SC_CLK_TCK")
_RABBITMQ = {"beam.smp", "erl_child_setup", "epmd", "inet_gethost"}


def children(pid: int) -> list[int]:
    """The direct children of `pid`."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def service_processes(supervisor: int) -> dict[str, int]:
    """Service name -> pid of the `microshop serve NAME` children of `supervisor` (with
    several replicas of NAME, the last one found)."""
    return {name: pid for pid, name in _served(supervisor)}


def _served(supervisor: int) -> list[tuple[int, str]]:
    served = []
    for pid in children(supervisor):
        argv = _argv(pid)
        if b"serve" in argv[:-1]:
            served.append((pid, argv[argv.index(b"serve") + 1].decode()))
    return served


def _stat(pid: int) -> list[str] | None:
    """The fields of `/proc/{pid}/stat` after "pid (comm) " (from `state`); None when the
    process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of `pid` (all its threads) so far; None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def ended_children_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of the children of `pid` that ended and were waited for (for a
    Postgres server: its backends that ended); None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[13]) + int(fields[14])) / _TICKS


def parent_of(pid: int) -> int | None:
    """The parent of `pid`; None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def machine_busy_seconds() -> float:
    """Non-idle CPU time of the whole machine, all cores summed."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICKS  # guest time is already inside user


def _who(application_name: str) -> str:
    """`microshop-order.1-session` -> `order`."""
    name = application_name.removeprefix("microshop-").removesuffix("-session")
    return name.split(".", 1)[0]


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """CPU seconds per (group, pid) at one moment, and the machine's busy seconds."""

    per_pid: Mapping[tuple[str, int], float]
    machine: float


class CpuBudget:
    """Snapshots of every process of the stack at `supervisor` over database `dsn`."""

    def __init__(self, supervisor: int, dsn: str) -> None:
        self.supervisor, self.dsn = supervisor, dsn

    async def snapshot(self) -> Snapshot:
        groups: dict[int, str] = dict(_served(self.supervisor))
        groups[self.supervisor] = "supervisor"  # `microshop up`: it relays every log line
        groups[os.getpid()] = CLIENT
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            if _comm(pid) in _RABBITMQ:
                groups[pid] = "rabbitmq"
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                """SELECT pid, datname = current_database(), backend_type, application_name
                   FROM pg_stat_activity WHERE pid <> pg_backend_pid()"""
            )
        finally:
            await conn.close()
        for pid, ours, backend_type, application in rows:
            if backend_type != "client backend":
                groups[pid] = "postgres: server"
            elif ours:
                service = _who(application or "")
                known = service and application.startswith("microshop-")
                groups[pid] = f"postgres: {service if known else CLIENT}"
        per_pid = {}
        for pid, group in groups.items():
            seconds = _cpu_seconds(pid)
            if seconds is not None:
                per_pid[(group, pid)] = seconds
        return Snapshot(per_pid, machine_busy_seconds())

    @staticmethod
    def per_unit(before: Snapshot, after: Snapshot, units: int) -> dict[str, float]:
        """CPU milliseconds per unit of work by group, largest first, with `machine` (all
        busy time) and `other` (what no group accounts for)."""
        spent: dict[str, float] = {}
        for (group, pid), seconds in after.per_pid.items():
            spent[group] = spent.get(group, 0.0) + seconds - before.per_pid.get((group, pid), 0.0)
        machine = after.machine - before.machine
        spent["other"] = max(0.0, machine - sum(spent.values()))
        units = max(units, 1)
        table = {g: round(s * 1000 / units, 2) for g, s in spent.items() if s > 0}
        ordered = dict(sorted(table.items(), key=lambda item: -item[1]))
        return {"machine": round(machine * 1000 / units, 2), **ordered}

"""Running several replicas of each service: where they listen, how callers find them, and
whether their connections fit the Postgres server.

Replica i of a service listens on its port + 100 * i; `microshop up` hands every process
the base URLs of every replica (`<SERVICE>_URL`, comma-separated) unless the environment
names them already. Each process opens its pool (`DB_POOL_MAX_SIZE`) plus one session
connection (`eventstore.session`); the gateway's operator pages keep a small pool of their
own. The plan adds these up per service and compares them with what the server allows:
`max_connections` less the connections reserved for superusers less
`DB_CONNECTION_RESERVE` (CLI commands, psql, monitoring).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import asyncpg

from .config import SERVICE_PORTS, Config, replica_port

__all__ = [
    "ADMIN_POOL_SIZE",
    "Capacity",
    "Plan",
    "plan",
    "replica_urls",
    "server_capacity",
]

ADMIN_POOL_SIZE = 4
"""The gateway's operator pages' own pool (`web/admin`)."""
MIN_POOL_SIZE = 2
MAX_AUTO_POOL_SIZE = 10
_WITHOUT_DATABASE = frozenset({"gateway"})  # its connections are the operator pages'


def replica_urls(
    config: Config, counts: Mapping[str, int], environ: Mapping[str, str]
) -> dict[str, str]:
    """`<SERVICE>_URL` for each service with several replicas whose URL the environment
    does not set: its replicas on this host. Raises ValueError when two processes would
    share a port."""
    ports: dict[int, str] = {}
    for service, count in counts.items():
        for i in range(count):
            port = replica_port(config.port_of(service), i)
            if port > 65535:
                raise ValueError(f"{service} replica {i} would listen on port {port} (> 65535)")
            if port in ports:
                raise ValueError(f"{service} replica {i} and {ports[port]} both want port {port}")
            ports[port] = f"{service} replica {i}"
    urls = {}
    for service, count in counts.items():
        env_name = SERVICE_PORTS[service][0].removesuffix("_PORT") + "_URL"
        if count > 1 and not environ.get(env_name, "").strip():
            urls[env_name] = ",".join(
                f"http://127.0.0.1:{replica_port(config.port_of(service), i)}" for i in range(count)
            )
    return urls


@dataclasses.dataclass(frozen=True, slots=True)
class Capacity:
    """What a Postgres server allows, and what others use of it now."""

    max_connections: int
    superuser_reserved: int
    in_use: int

    def available(self, reserve: int) -> int:
        return self.max_connections - self.superuser_reserved - reserve


async def server_capacity(dsn: str) -> Capacity:
    """The server's limits (asked of its `postgres` database when `dsn`'s does not exist
    yet: `microshop up` creates it)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        conn = await asyncpg.connect(dsn, timeout=10, database="postgres")
    try:
        row = await conn.fetchrow(
            """SELECT current_setting('max_connections')::int,
                      current_setting('superuser_reserved_connections')::int,
                      (SELECT count(*) FROM pg_stat_activity
                       WHERE backend_type = 'client backend')::int - 1"""
        )
    finally:
        await conn.close()
    assert row is not None
    return Capacity(row[0], row[1], max(row[2], 0))


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """One service's share: `replicas` processes of `per_process` connections each."""

    service: str
    replicas: int
    pool: int
    session: int

    @property
    def per_process(self) -> int:
        return self.pool + self.session

    @property
    def total(self) -> int:
        return self.replicas * self.per_process


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The connections a stack will open at most, service by service."""

    lines: tuple[Line, ...]
    pool_size: int
    pooled_elsewhere: bool  # the pools go through PgBouncer: only sessions reach Postgres

    @property
    def total(self) -> int:
        """What reaches the server `DATABASE_DIRECT_URL` (or `DATABASE_URL`) names."""
        if self.pooled_elsewhere:
            return sum(line.replicas * line.session for line in self.lines)
        return sum(line.total for line in self.lines)

    @property
    def processes(self) -> int:
        return sum(line.replicas for line in self.lines)

    def table(self) -> list[str]:
        width = max(len(line.service) for line in self.lines)
        rows = [
            f"  {line.service:<{width}}  {line.replicas} x (pool {line.pool} + session"
            f" {line.session}) = {line.total}"
            for line in self.lines
        ]
        if self.pooled_elsewhere:
            rows.append("  (pools go through PgBouncer: only the sessions reach Postgres)")
        return rows

    def explain(self, capacity: Capacity, reserve: int) -> str:
        return (
            f"{self.total} connections for {self.processes} processes; the server allows"
            f" {capacity.available(reserve)} (max_connections {capacity.max_connections}"
            f" - {capacity.superuser_reserved} reserved for superusers"
            f" - DB_CONNECTION_RESERVE {reserve})"
        )


def plan(services: Sequence[str], counts: Mapping[str, int], config: Config) -> Plan:
    """The plan of `services` at `counts` replicas with `config`'s pool size."""
    pooled_elsewhere = bool(
        config.database_direct_url and config.database_direct_url != config.database_url
    )
    lines = tuple(
        Line(
            service,
            counts.get(service, 1),
            ADMIN_POOL_SIZE if service in _WITHOUT_DATABASE else config.db_pool_max_size,
            1,
        )
        for service in services
    )
    return Plan(lines, config.db_pool_max_size, pooled_elsewhere)


def fitting_pool_size(
    services: Sequence[str], counts: Mapping[str, int], config: Config, available: int
) -> int | None:
    """The largest pool size (up to 10) with which the stack fits `available`
    connections; None when even a pool of 2 does not."""
    fixed = plan(services, counts, dataclasses.replace(config, db_pool_max_size=0))
    pooled = sum(line.replicas for line in fixed.lines if line.service not in _WITHOUT_DATABASE)
    if fixed.pooled_elsewhere or pooled == 0:
        return MAX_AUTO_POOL_SIZE
    size = min(MAX_AUTO_POOL_SIZE, math.floor((available - fixed.total) / pooled))
    return size if size >= MIN_POOL_SIZE else None

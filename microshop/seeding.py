"""`microshop seed`: each service seeds what it owns; `--reset` wipes the data first.

Wiping empties the append-only `events` table too, so it needs the table's owner (the
role migrations run as): `eventstore.maintenance.editing_events`.

A service that has something to seed has a `seed` module with
`async def seed(config, store) -> list[str]` (the lines to report), raising `SeedError`
when what exists forbids seeding (one `Error:` line from the CLI). The kernel finds them
by the services' names (`services.SERVICES`), never by importing a service directly, and
runs them in start-up order (accounts before the catalog).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable

from eventstore import PostgresEventStore
from eventstore.maintenance import editing_events
from eventstore.pg import Pool

from .config import Config
from .services import SERVICES

__all__ = ["SeedError", "has_events", "reset", "seed", "seeders"]


class SeedError(Exception):
    """The data found forbids seeding (e.g. `ADMIN_EMAIL` belongs to an ordinary account)."""


Seeder = Callable[[Config, PostgresEventStore], Awaitable[list[str]]]

# Kept by a reset: the schema's own bookkeeping and the token signing keys.
_KEPT = ("schema_migrations", "signing_keys")


async def has_events(pool: Pool) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT FROM events)"))


async def reset(pool: Pool) -> list[str]:
    """Empty every table but the schema bookkeeping and signing keys; return their names.
    Owner only (`AppendOnly` otherwise): nothing is emptied unless everything is."""
    async with pool.acquire() as conn, editing_events(conn):
        tables: list[str] = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND NOT tablename = ANY($1) ORDER BY tablename",
                list(_KEPT),
            )
        ]
        if tables:
            quoted = ", ".join('"' + t.replace('"', '""') + '"' for t in tables)
            await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY")
    return tables


def seeders() -> dict[str, Seeder]:
    """Each service's `seed`, by service name, in start-up order."""
    found: dict[str, Seeder] = {}
    for name, app_module in SERVICES.items():
        module = app_module.rpartition(".")[0] + ".seed"
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            found[name] = importlib.import_module(module).seed
    return found


async def seed(config: Config, store: PostgresEventStore) -> list[str]:
    """Run every service's seeder; the lines they report, in order."""
    lines: list[str] = []
    for seeder in seeders().values():
        lines += await seeder(config, store)
    return lines

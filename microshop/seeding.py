"""`microshop seed`: the admin account and the demo catalog; `--reset` wipes the data first."""

from __future__ import annotations

import dataclasses
import secrets

from eventstore import PostgresEventStore
from eventstore.pg import Pool

from .config import Config

__all__ = ["SeedResult", "has_events", "reset", "seed"]

# Kept by a reset: the schema's own bookkeeping and the token signing keys.
_KEPT = ("schema_migrations", "signing_keys")


@dataclasses.dataclass(frozen=True, slots=True)
class SeedResult:
    admin_email: str
    admin_created: bool
    generated_password: str | None
    products_created: int


async def has_events(pool: Pool) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT FROM events)"))


async def reset(pool: Pool) -> list[str]:
    """Empty every table but the schema bookkeeping and signing keys; return their names."""
    tables: list[str] = [
        r["tablename"]
        for r in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND NOT tablename = ANY($1) ORDER BY tablename",
            list(_KEPT),
        )
    ]
    if tables:
        quoted = ", ".join('"' + t.replace('"', '""') + '"' for t in tables)
        await pool.execute(f"TRUNCATE {quoted} RESTART IDENTITY")
    return tables


async def seed(config: Config, store: PostgresEventStore) -> SeedResult:
    """Create the admin (ADMIN_EMAIL/ADMIN_PASSWORD) and the missing demo products."""
    from services.auth import events as _auth_events  # noqa: F401  (registers its events)
    from services.auth.accounts import Accounts
    from services.auth.app import ensure_admin
    from services.product import events as _product_events  # noqa: F401
    from services.product.seed import seed_products

    password = config.admin_password
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    created = await ensure_admin(Accounts(store), config.admin_email, password)
    products = await seed_products(store, store.pool)
    return SeedResult(config.admin_email, created, generated if created else None, products)

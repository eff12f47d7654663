"""`microshop migrate`: apply `migrations/*.sql` in order, once each, safely in parallel."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import urllib.parse
from pathlib import Path

import asyncpg

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "create_database",
    "grant_app_role",
    "migrate",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK = "SELECT pg_advisory_lock(hashtextextended('microshop:migrate', 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('microshop:migrate', 0))"


class MigrationError(Exception):
    """A migration file is misnamed, changed after it was applied, or failed to apply."""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of `directory`, by version; misnamed `.sql` files are an error."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        migrations.append(Migration(match.group(1), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


async def create_database(dsn: str) -> bool:
    """Create the database `dsn` names if it does not exist; True when it was created."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = urllib.parse.unquote(urllib.parse.urlsplit(dsn).path.lstrip("/"))
    if not name:
        raise MigrationError(f"{dsn!r} names no database")
    admin = await asyncpg.connect(dsn, database="postgres")
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):  # a parallel run won
        return False
    finally:
        await admin.close()
    log.info("created database %s", name)
    return True


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Kept by the role that migrates: the log (the application may only read and append to it)
# and the migrations' own bookkeeping.
_OWNER_ONLY = ("events", "schema_migrations")


async def grant_app_role(conn: asyncpg.Connection[asyncpg.Record], role: str) -> None:
    """Let the services run as `role`: it owns every table but `events` (projections
    rebuild and swap their tables) and may create tables, but may only read and append to
    `events`: no UPDATE, DELETE, TRUNCATE, or disabling its trigger. Idempotent."""
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role):
        raise MigrationError(f"there is no role {role!r} (CREATE ROLE {role} LOGIN first)")
    schema = await conn.fetchval("SELECT current_schema()")
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> ALL($2)",
        schema,
        list(_OWNER_ONLY),
    )
    try:
        async with conn.transaction():
            await conn.execute(f"GRANT USAGE, CREATE ON SCHEMA {_ident(schema)} TO {_ident(role)}")
            for table in tables:
                await conn.execute(f"ALTER TABLE {_ident(table[0])} OWNER TO {_ident(role)}")
            await conn.execute(f"REVOKE ALL ON events FROM {_ident(role)}")
            await conn.execute(f"GRANT SELECT, INSERT ON events TO {_ident(role)}")
            await conn.execute(f"GRANT SELECT ON schema_migrations TO {_ident(role)}")
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"granting {role}: {exc}") from exc
    log.info("%s may run the services: it owns the tables but events", role)


async def migrate(
    dsn: str,
    directory: Path = MIGRATIONS_DIR,
    *,
    create: bool = True,
    app_role: str | None = None,
) -> list[str]:
    """Apply the pending migrations; return the names applied (none on a second run).
    With `app_role`, then hand the tables over to that role (`grant_app_role`)."""
    if create:
        await create_database(dsn)
    migrations = discover(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_LOCK)  # a concurrent run waits here, then finds nothing to do
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    text PRIMARY KEY,
                       name       text NOT NULL,
                       checksum   text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
            done = []
            for migration in migrations:
                known = applied.get(migration.version)
                if known is not None:
                    if known["checksum"] != migration.checksum:
                        log.warning("%s changed after it was applied", migration.name)
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{migration.name}: {exc}") from exc
                log.info("applied %s", migration.name)
                done.append(migration.name)
            if app_role:
                await grant_app_role(conn, app_role)
            return done
        finally:
            await conn.execute(_UNLOCK)
    finally:
        await conn.close()

"""`microshop migrate`: apply `migrations/*.sql` in order, once each, safely in parallel."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import urllib.parse
from pathlib import Path

import asyncpg

__all__ = ["MIGRATIONS_DIR", "Migration", "MigrationError", "create_database", "migrate"]

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


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR, *, create: bool = True) -> list[str]:
    """Apply the pending migrations; return the names applied (none on a second run)."""
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
            return done
        finally:
            await conn.execute(_UNLOCK)
    finally:
        await conn.close()

"""Postgres side of accounts: users, registration with its event, failed-login windows."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import asyncpg

from eventstore import NO_STREAM, Metadata, PostgresEventStore
from microshop.domain import ConflictError

from .domain import UserRegistered, normalize_email, register
from .events import USER_STREAMS

__all__ = ["Account", "Accounts", "EmailTaken"]


class EmailTaken(ConflictError):
    """An account with this email exists."""

    code = "email_taken"

    def __init__(self, email: str) -> None:
        super().__init__("an account with this email exists")
        self.email = email


class Account(NamedTuple):
    """A row of `users`: who may log in, with which password hash and roles."""

    id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]


def _account(row: Any) -> Account:
    return Account(str(row["id"]), row["email"], row["password_hash"], tuple(row["roles"]))


class Accounts:
    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.pool = store.pool

    async def create(
        self, email: str, password_hash: str, *, admin: bool = False, metadata: Metadata
    ) -> UserRegistered:
        """Insert the account and append UserRegistered in one transaction."""
        event = register(email, admin=admin)
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO users (id, email, password_hash, roles) VALUES ($1, $2, $3, $4)",
                    uuid.UUID(event.user_id),
                    event.email,
                    password_hash,
                    list(event.roles),
                )
            except asyncpg.UniqueViolationError:
                raise EmailTaken(event.email) from None
            await self.store.append(
                USER_STREAMS.stream(event.user_id),
                [event],
                NO_STREAM,
                metadata=metadata,
                conn=conn,
            )
        return event

    async def by_email(self, email: str) -> Account | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM users WHERE lower(email) = $1", normalize_email(email)
        )
        return None if row is None else _account(row)

    async def by_id(self, user_id: str) -> Account | None:
        try:
            key = uuid.UUID(user_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow("SELECT * FROM users WHERE id = $1", key)
        return None if row is None else _account(row)

    # -- throttling ---------------------------------------------------------------------

    async def locked_for(self, keys: list[str], limit: int, window: int) -> float:
        """Seconds until login may be tried again for any of `keys` (0: not locked)."""
        row = await self.pool.fetchrow(
            """SELECT max(wait) FROM (
                   SELECT key, extract(epoch FROM min(failed_at) + make_interval(secs => $3)
                                                   - now()) AS wait
                   FROM (SELECT key, failed_at,
                                row_number() OVER (PARTITION BY key ORDER BY failed_at DESC) AS n
                         FROM login_failures
                         WHERE key = ANY($1) AND failed_at > now() - make_interval(secs => $3)
                        ) recent
                   WHERE n <= $2 GROUP BY key HAVING count(*) >= $2) locked""",
            keys,
            limit,
            float(window),
        )
        wait = row[0] if row is not None else None
        return max(float(wait), 0.0) if wait is not None else 0.0

    async def record_failure(self, keys: list[str], window: int) -> None:
        await self.pool.execute(
            """WITH gone AS (DELETE FROM login_failures
                             WHERE key = ANY($1) AND failed_at < now() - make_interval(secs => $2))
               INSERT INTO login_failures (key) SELECT unnest($1::text[])""",
            keys,
            float(window),
        )

    async def clear_failures(self, key: str) -> None:
        await self.pool.execute("DELETE FROM login_failures WHERE key = $1", key)

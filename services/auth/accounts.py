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

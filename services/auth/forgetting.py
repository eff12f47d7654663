"""Forgetting a person (the right to erasure) without editing one stored event.

In one transaction: `UserForgotten` is appended to the account's stream, the person's data
key is destroyed (every sealed copy of their email — events rows, published messages,
backups of the log — is unreadable from then on, and reads as redacted), the account row
is deleted (so nobody logs in as them again; a new registration with the same email is a
new person with a new id), the failed-login records of the account go, and the id
joins `forgotten_users`, which every service follows to refuse the tokens issued before.

What stays is pseudonymous and linked to nobody: the user id in orders, carts and event
metadata. Orders are kept (sales records a shop must keep); the carts are kept too, so
every read model rebuilds to the same rows.

An account whose registration was stored before sealing existed (its email in plain text
in `events`) is refused until the database owner seals those rows
(`microshop gdpr seal-legacy`): forgetting never edits events, so it could not take the
email out of them.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from eventstore import ANY, ConcurrencyError, Metadata, PostgresEventStore, Retry
from eventstore.maintenance import plain_events
from eventstore.vault import PersonalDataVault
from microshop.domain import ConflictError, NotFoundError

from .domain import ROLE_ADMIN, UserForgotten
from .events import USER_STREAMS
from .throttle import forget_attempts

__all__ = ["AlreadyForgotten", "Forgotten", "PlainPersonalData", "UserNotFound", "forget"]


class UserNotFound(NotFoundError):
    code = "user_not_found"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"there is no user {user_id}", details={"user_id": user_id})


class AlreadyForgotten(ConflictError):
    code = "already_forgotten"

    def __init__(self, user_id: str, at: datetime) -> None:
        super().__init__(
            f"user {user_id} was forgotten at {at.isoformat()}",
            details={"user_id": user_id, "forgotten_at": at.isoformat()},
        )
        self.at = at


class PlainPersonalData(ConflictError):
    code = "plain_personal_data"

    def __init__(self, user_id: str, events: int) -> None:
        super().__init__(
            f"{events} event(s) of user {user_id} hold personal data stored before it was"
            " encrypted; the database owner must run `microshop gdpr seal-legacy` first",
            details={"user_id": user_id, "plain_events": events},
        )


class AdminAccount(ConflictError):
    code = "admin_account"

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"user {user_id} is an admin: forget an admin account with `microshop gdpr forget`"
            " (the API never removes the shop's admins, its own caller included)",
            details={"user_id": user_id},
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Forgotten:
    user_id: str
    forgotten_at: datetime
    key_destroyed: bool


async def forget(
    store: PostgresEventStore,
    vault: PersonalDataVault,
    user_id: str,
    *,
    metadata: Metadata,
    spare_admins: bool = False,
) -> Forgotten:
    """Forget the person behind account `user_id` (UserNotFound, AlreadyForgotten,
    PlainPersonalData, and with `spare_admins` AdminAccount, refuse it and change
    nothing). An append to the person's stream racing with it makes it start again."""
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        raise UserNotFound(user_id) from None
    for attempt in range(_RACES.attempts):
        try:
            return await _forget(store, vault, key, metadata, spare_admins)
        except ConcurrencyError:
            if attempt == _RACES.attempts - 1:
                raise
            await _RACES.pause(attempt)
    raise AssertionError("unreachable")


_RACES = Retry(attempts=5)  # as a command decides again after losing a race


async def _forget(
    store: PostgresEventStore,
    vault: PersonalDataVault,
    key: uuid.UUID,
    metadata: Metadata,
    spare_admins: bool,
) -> Forgotten:
    user_id = str(key)
    async with store.pool.acquire() as conn, conn.transaction():
        account = await conn.fetchrow(
            "SELECT email, roles FROM users WHERE id = $1 FOR UPDATE", key
        )
        if account is None:
            at = await conn.fetchval(
                "SELECT forgotten_at FROM forgotten_users WHERE user_id = $1", user_id
            )
            raise UserNotFound(user_id) if at is None else AlreadyForgotten(user_id, at)
        if spare_admins and ROLE_ADMIN in account["roles"]:
            raise AdminAccount(user_id)
        stream = USER_STREAMS.stream(user_id)
        plain = await plain_events(conn, store.registry, stream)
        if plain:
            raise PlainPersonalData(user_id, plain)
        await store.append(stream, [UserForgotten(user_id)], ANY, metadata=metadata, conn=conn)
        destroyed = await vault.forget(user_id, conn=conn)
        await conn.execute("DELETE FROM users WHERE id = $1", key)
        await forget_attempts(conn, account["email"])
        at = await conn.fetchval(
            "INSERT INTO forgotten_users (user_id) VALUES ($1) RETURNING forgotten_at", user_id
        )
    return Forgotten(user_id, at, destroyed)

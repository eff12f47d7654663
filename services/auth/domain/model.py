"""Accounts: who may register, what a registration records, and forgetting a person."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any, ClassVar

from eventstore.personal import PERSONAL, REDACTED, SUBJECT, is_sealed

ROLE_USER = "user"
ROLE_ADMIN = "admin"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt hashes anything, but a megabyte "password" is an attack


@dataclasses.dataclass(frozen=True, slots=True)
class UserRegistered:
    """An account was made. The email is personal data: the event store seals it with the
    person's key before storing (v2; v1 stored it in plain text)."""

    SCHEMA_VERSION: ClassVar[int] = 2
    user_id: Annotated[str, SUBJECT]
    email: Annotated[str, PERSONAL]
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class UserForgotten:
    """The person behind an account was forgotten: their key is destroyed (their sealed
    data reads as redacted from now on) and the account is gone."""

    user_id: str


def upcast_registered_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 stored the email in plain text. Such a row reads as redacted until the database
    owner seals it in place (`microshop gdpr seal-legacy`); a sealed one reads as v2."""
    email = data.get("email")
    return {**data, "email": email if is_sealed(email) else REDACTED}


def normalize_email(email: str) -> str:
    """Emails are compared without case or surrounding space."""
    return email.strip().lower()


def register(
    email: str, *, admin: bool = False, user_id: uuid.UUID | None = None
) -> UserRegistered:
    """The event of a new account (uniqueness is the store's job: one row per email)."""
    roles = (ROLE_USER, ROLE_ADMIN) if admin else (ROLE_USER,)
    return UserRegistered(str(user_id or uuid.uuid4()), normalize_email(email), roles)

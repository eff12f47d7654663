"""Accounts: who may register, and what a registration records."""

from __future__ import annotations

import dataclasses
import uuid

ROLE_USER = "user"
ROLE_ADMIN = "admin"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt hashes anything, but a megabyte "password" is an attack


@dataclasses.dataclass(frozen=True, slots=True)
class UserRegistered:
    user_id: str
    email: str
    roles: tuple[str, ...]


def normalize_email(email: str) -> str:
    """Emails are compared without case or surrounding space."""
    return email.strip().lower()


def register(
    email: str, *, admin: bool = False, user_id: uuid.UUID | None = None
) -> UserRegistered:
    """The event of a new account (uniqueness is the store's job: one row per email)."""
    roles = (ROLE_USER, ROLE_ADMIN) if admin else (ROLE_USER,)
    return UserRegistered(str(user_id or uuid.uuid4()), normalize_email(email), roles)

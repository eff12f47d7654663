"""`microshop seed` for auth-service: the admin account from ADMIN_EMAIL/ADMIN_PASSWORD."""

from __future__ import annotations

import logging
import secrets

from eventstore import Metadata, PostgresEventStore
from microshop.config import Config

from . import events as _events  # noqa: F401  (registers UserRegistered)
from .accounts import Accounts, EmailTaken
from .passwords import hash_password

__all__ = ["ensure_admin", "seed"]

log = logging.getLogger(__name__)


async def ensure_admin(accounts: Accounts, email: str, password: str) -> bool:
    """Create the admin account unless it exists; True when this call created it."""
    if await accounts.by_email(email) is not None:
        return False
    try:
        event = await accounts.create(
            email,
            await hash_password(password),
            admin=True,
            metadata=Metadata(service="auth", actor="bootstrap"),
        )
    except EmailTaken:  # another instance won the race
        return False
    log.info("created the admin account %s", event.user_id)  # an id: logs hold no email
    return True


async def seed(config: Config, store: PostgresEventStore) -> list[str]:
    """The admin account; without ADMIN_PASSWORD a password is generated and shown once."""
    password = config.admin_password or secrets.token_urlsafe(12)
    if not await ensure_admin(Accounts(store), config.admin_email, password):
        return [f"admin {config.admin_email} exists"]
    lines = [f"created admin {config.admin_email}"]
    if not config.admin_password:
        lines.append(f"  password: {password}  (set ADMIN_PASSWORD to choose)")
    return lines

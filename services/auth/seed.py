"""`microshop seed` for auth-service: the admin account from ADMIN_EMAIL/ADMIN_PASSWORD."""

from __future__ import annotations

import logging
import secrets

from eventstore import Metadata, PostgresEventStore
from microshop.config import Config
from microshop.seeding import SeedError

from . import events as _events  # noqa: F401  (registers UserRegistered)
from .accounts import Accounts, EmailTaken
from .domain import ROLE_ADMIN
from .passwords import hash_password

__all__ = ["AdminEmailTaken", "ensure_admin", "seed"]

log = logging.getLogger(__name__)


class AdminEmailTaken(SeedError):
    """`ADMIN_EMAIL` belongs to an account without the admin role (registered before the
    address was reserved): it is never promoted, that would hand the shop to whoever
    registered it. (The message names no address: it may reach the central logs.)"""

    def __init__(self) -> None:
        super().__init__(
            "ADMIN_EMAIL belongs to an account without the admin role, not the admin:"
            " forget that account (microshop gdpr forget) or set another ADMIN_EMAIL"
        )


async def ensure_admin(accounts: Accounts, email: str, password: str) -> bool:
    """Create the admin account unless it exists; True when this call created it.
    `AdminEmailTaken` when an ordinary account holds the address."""
    existing = await accounts.by_email(email)
    if existing is None:
        try:
            event = await accounts.create(
                email,
                await hash_password(password),
                admin=True,
                metadata=Metadata(service="auth", actor="bootstrap"),
            )
        except EmailTaken:  # another instance won the race
            existing = await accounts.by_email(email)
        else:
            log.info("created the admin account %s", event.user_id)  # an id: no email in logs
            return True
    if existing is not None and ROLE_ADMIN not in existing.roles:
        raise AdminEmailTaken()
    return False


async def seed(config: Config, store: PostgresEventStore) -> list[str]:
    """The admin account; without ADMIN_PASSWORD a password is generated and shown once."""
    password = config.admin_password or secrets.token_urlsafe(12)
    if not await ensure_admin(Accounts(store), config.admin_email, password):
        return [f"admin {config.admin_email} exists"]
    lines = [f"created admin {config.admin_email}"]
    if not config.admin_password:
        lines.append(f"  password: {password}  (set ADMIN_PASSWORD to choose)")
    return lines

"""`microshop gdpr ...`: forget a person, rotate the key-encryption key, seal old rows.

Forgetting is auth-service's own operation (`services.auth.forgetting`), found by the
service's name like the seeders, so the kernel still imports no service.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from eventstore import EventStoreError, Metadata, registry
from eventstore.maintenance import seal_plain_events
from microshop.domain import DomainError

from ..personal import vault_for
from ..services import SERVICES
from .common import load_config, run_async
from .eventlog import open_store

__all__ = ["gdpr"]


def _auth(module: str) -> Any:
    """A module of auth-service (importing it registers auth's events)."""
    return importlib.import_module(SERVICES["auth"].rpartition(".")[0] + "." + module)


@click.group()
def gdpr() -> None:
    """Personal data: forget a person, rotate the key-encryption key, seal old rows."""


@gdpr.command()
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask before forgetting.")
def forget(user_id: str, yes: bool) -> None:
    """Forget the person behind account USER_ID, for good.

    Their data key is destroyed (their email in the event log becomes unreadable), the
    account is deleted, `UserForgotten` is appended and every service refuses their
    tokens. Orders and carts stay, under an id that no longer leads to anyone.
    """
    forgetting, accounts = _auth("forgetting"), _auth("accounts")

    async def run() -> None:
        async with open_store() as store:
            account = await accounts.Accounts(store).by_id(user_id)
            if account is not None and not yes:  # else forget() says why it cannot
                click.confirm(
                    f"Forget user {account.id} (roles: {', '.join(account.roles)})? Their key"
                    " is destroyed and their account deleted; this cannot be undone.",
                    abort=True,
                )
            done = await forgetting.forget(
                store,
                vault_for(load_config(), store.pool),
                user_id,
                metadata=Metadata(service="auth", actor="cli"),
            )
            click.echo(
                f"forgot user {done.user_id} at {done.forgotten_at.isoformat()}: "
                + ("key destroyed, " if done.key_destroyed else "no key to destroy, ")
                + "account deleted, UserForgotten appended"
            )

    _run(run())


@gdpr.command("rotate-key")
def rotate_key() -> None:
    """Wrap every data key with the current key-encryption key.

    Rotation: put the new key first in PII_KEY_ENCRYPTION_KEY and keep the old one after it
    (`NEW,OLD`), restart the services, run this, then drop OLD from the variable.
    """

    async def run() -> None:
        async with open_store() as store:
            vault = vault_for(load_config(), store.pool)
            rewrapped = await vault.rewrap()
            counts = await vault.counts()
            click.echo(
                f"rewrapped {rewrapped} data key(s); {sum(counts.by_kek.values())} are wrapped"
                f" by key-encryption key {vault.keys.current_id}, {counts.forgotten} forgotten"
            )

    _run(run())


@gdpr.command("seal-legacy")
@click.option("--yes", is_flag=True, help="Do not ask before rewriting the rows.")
def seal_legacy(yes: bool) -> None:
    """Seal the personal data stored in plain text before sealing existed (once, after the
    upgrade; as the owner of the events table). The only edit of stored events there is:
    each plain value is replaced by the same value sealed with its person's key (or by
    [redacted] for a person forgotten already); nothing else in the rows changes."""
    _auth("events")
    if not yes:
        click.confirm(
            "This rewrites stored events that hold personal data in plain text"
            " (appends wait until it is done). Continue?",
            abort=True,
        )

    async def run() -> None:
        async with open_store() as store, store.pool.acquire() as conn:
            done = await seal_plain_events(conn, vault_for(load_config(), store.pool), registry)
        click.echo(f"sealed {done.sealed} personal value(s), erased {done.erased}")

    _run(run())


def _run(work: Any) -> None:
    try:
        run_async(work)
    except (DomainError, EventStoreError) as exc:
        raise click.ClickException(getattr(exc, "message", None) or str(exc)) from None

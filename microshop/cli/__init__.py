"""The `microshop` command line (console script from setup.cfg)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os

import click

from eventstore import EventStoreError

from .. import services
from ..config import SERVICE_PORTS, Config, redacted
from ..logs import setup_logging
from .common import Main, load_config, run_async
from .eventlog import events, projections
from .gdpr import gdpr
from .messaging import dead_letters, republish
from .stack import REPLICAS_HELP, budget, prepare

__all__ = ["main"]


@click.group(
    cls=Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="microshop")
@click.option(
    "--traceback", is_flag=True, help="Show the traceback of a failure (for reporting a bug)."
)
def main(traceback: bool) -> None:
    """MicroShop: an event-sourced microservices shop.

    Configuration comes from the environment (see .env.example): DATABASE_URL, AMQP_URL,
    MICROSHOP_NAMESPACE, the *_PORT variables and more. A failure is one `Error:` line
    and exit status 1 (passwords masked).
    """


@main.command()
@click.option("--no-create", is_flag=True, help="Fail instead of creating a missing database.")
@click.option(
    "--seed-if-empty",
    is_flag=True,
    help="Then seed the admin and the demo catalog when the database has no events yet.",
)
@click.option(
    "--app-role",
    default="",
    metavar="ROLE",
    help="Then let ROLE run the services: it owns the tables but events, which it may only "
    "read and append to (run migrations as the owner role, the services as ROLE).",
)
def migrate(no_create: bool, seed_if_empty: bool, app_role: str) -> None:
    """Create the database if missing and apply pending migrations (idempotent)."""
    from ..migrate import MigrationError
    from ..migrate import migrate as run_migrations

    config = load_config()
    logging.basicConfig(level=logging.WARNING)
    try:
        applied = run_async(
            run_migrations(
                config.session_database_url, create=not no_create, app_role=app_role or None
            )
        )
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")
    if app_role:
        click.echo(f"{app_role} owns the tables but events, which it may only read and append to")
    if seed_if_empty:
        _seed(config, reset=False, if_empty=True)


@main.command()
@click.argument("service", type=click.Choice(list(services.SERVICES)))
@click.option("--port", type=int, default=None, help="Override the service's *_PORT.")
def serve(service: str, port: int | None) -> None:
    """Run one SERVICE in the foreground."""
    config = load_config()
    setup_logging(service, config.log_level)
    try:
        services.serve(service, config, port=port)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        env_name, _ = SERVICE_PORTS[service]
        chosen = config.port_of(service) if port is None else port
        raise click.ClickException(
            f"{service} cannot listen on {config.host}:{chosen}: the port is in use"
            f" (choose another with {env_name} or --port)"
        ) from None


@main.command()
@click.option("--only", default="", help="Comma-separated services to run (default: all).")
@click.option("--skip-migrate", is_flag=True, help="Do not apply migrations first.")
@click.option("--replicas", "spec", default="", metavar="N|SERVICE=N,...", help=REPLICAS_HELP)
def up(only: str, skip_migrate: bool, spec: str) -> None:
    """Migrate, then run every service with prefixed logs; Ctrl-C stops them all.

    Replica i of a service listens on its port + 100 * i, and every caller spreads its
    requests over the replicas. `up` refuses to start when the stack's connections would
    not fit the database (see `microshop budget`).
    """
    from ..migrate import migrate as run_migrations
    from ..supervisor import Supervisor

    config = load_config()
    names = services.available()
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise click.ClickException(f"unknown or unbuilt services: {', '.join(unknown)}")
        names = [n for n in names if n in wanted]
    if not skip_migrate:
        for name in run_async(run_migrations(config.session_database_url)):
            click.echo(f"applied {name}")
    if not config.pii_key_encryption_key:  # every service must use the same one
        from ..personal import DEV_KEY_FILE, development_key

        try:
            os.environ["PII_KEY_ENCRYPTION_KEY"] = development_key()
        except EventStoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"personal data: the development key-encryption key in {DEV_KEY_FILE}")
    counts, env, lines = prepare(names, spec)
    for line in lines:
        click.echo(line)
    started = [n if counts[n] == 1 else f"{n} x{counts[n]}" for n in names]
    click.echo(f"starting {', '.join(started)}")
    raise SystemExit(asyncio.run(Supervisor(names, replicas=counts, env=env).run()))


@main.command()
@click.option("--reset", is_flag=True, help="Wipe all events and read models first (asks).")
@click.option("--yes", is_flag=True, help="Do not ask before --reset wipes the data.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has events.")
def seed(reset: bool, yes: bool, if_empty: bool) -> None:
    """Create the admin account (ADMIN_EMAIL/ADMIN_PASSWORD) and the demo catalog.

    Safe to run again: what exists is kept. Without ADMIN_PASSWORD a password is
    generated and printed once.
    """
    config = load_config()
    if reset and not yes:
        click.confirm(
            "This deletes every event, account and read model in"
            f" {redacted(config.database_url)}. Continue?",
            abort=True,
        )

    _seed(config, reset=reset, if_empty=if_empty)


def _seed(config: Config, *, reset: bool, if_empty: bool) -> None:
    from eventstore import PostgresEventStore, create_pool

    from ..personal import vault_for
    from ..seeding import SeedError, has_events
    from ..seeding import reset as wipe
    from ..seeding import seed as run_seed

    async def run() -> None:
        pool = await create_pool(config.session_database_url, application_name="microshop-seed")
        store = PostgresEventStore(
            pool, dsn=config.session_database_url, vault=vault_for(config, pool)
        )
        try:
            if if_empty and await has_events(pool):
                click.echo("the database has events already: not seeding")
                return
            if reset:
                click.echo(f"wiped {len(await wipe(pool))} tables")
            for line in await run_seed(config, store):
                click.echo(line)
        finally:
            await store.close()
            await pool.close()

    try:
        run_async(run())  # a database that cannot be used is one `Error:` line (`common.Main`)
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    except EventStoreError as exc:  # not the owner of the log; no key-encryption key
        raise click.ClickException(str(exc)) from None


events.add_command(republish)
main.add_command(events)
main.add_command(projections)
main.add_command(dead_letters)
main.add_command(budget)
main.add_command(gdpr)

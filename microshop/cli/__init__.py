"""The `microshop` command line (console script from setup.cfg)."""

from __future__ import annotations

import asyncio
import errno
import logging

import click

from .. import services
from ..config import SERVICE_PORTS, Config, redacted
from ..logs import setup_logging
from .common import Main, load_config, run_async
from .eventlog import events, projections
from .messaging import dead_letters, republish

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
def migrate(no_create: bool, seed_if_empty: bool) -> None:
    """Create the database if missing and apply pending migrations (idempotent)."""
    from ..migrate import MigrationError
    from ..migrate import migrate as run_migrations

    config = load_config()
    logging.basicConfig(level=logging.WARNING)
    try:
        applied = run_async(run_migrations(config.database_url, create=not no_create))
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")
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
def up(only: str, skip_migrate: bool) -> None:
    """Migrate, then run every service with prefixed logs; Ctrl-C stops them all."""
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
        for name in run_async(run_migrations(config.database_url)):
            click.echo(f"applied {name}")
    click.echo(f"starting {', '.join(names)}")
    raise SystemExit(asyncio.run(Supervisor(names).run()))


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

    from ..seeding import has_events
    from ..seeding import reset as wipe
    from ..seeding import seed as run_seed

    async def run() -> None:
        pool = await create_pool(config.database_url, application_name="microshop-seed")
        store = PostgresEventStore(pool, dsn=config.database_url)
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

    run_async(run())  # a database that cannot be used is one `Error:` line (`common.Main`)


events.add_command(republish)
main.add_command(events)
main.add_command(projections)
main.add_command(dead_letters)

"""`microshop up`'s planning (replicas, their URLs, the connection budget) and
`microshop budget`, which prints the plan without starting anything."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import click

from .. import services
from ..config import Config, ConfigError, Replicas
from ..scaling import Capacity, Plan, fitting_pool_size, plan, replica_urls, server_capacity
from .common import load_config, run_async

__all__ = ["budget", "prepare"]

REPLICAS_HELP = (
    "Instances of every service (N) or of some (order=3,cart=2; both: 2,order=3)."
    " Default: MICROSHOP_REPLICAS, else 1."
)


def replicas_option(spec: str, config: Config) -> Replicas:
    if not spec:
        return config.replicas
    try:
        return Replicas.parse(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--replicas") from None


def _capacity(config: Config) -> Capacity:
    url = config.session_database_url
    try:
        return run_async(server_capacity(url))
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(
            f"cannot reach the database to plan connections: {exc}"
        ) from None
    except Exception as exc:  # asyncpg's errors: a wrong password, no such database, ...
        raise click.ClickException(
            f"cannot ask the database how many connections it allows: {exc}"
        ) from None


def _sized(
    names: Sequence[str],
    counts: Mapping[str, int],
    config: Config,
    capacity: Capacity,
    environ: Mapping[str, str],
) -> tuple[Config, Plan]:
    """`config` with the pool size the stack runs with, and its plan; a ClickException
    when the stack cannot fit the server."""
    available = capacity.available(config.db_connection_reserve)
    explicit = bool(environ.get("DB_POOL_MAX_SIZE", "").strip())
    fitting = fitting_pool_size(names, counts, config, available)
    if not explicit and fitting is not None:
        config = dataclasses.replace(config, db_pool_max_size=fitting)
    stack = plan(names, counts, config)
    if stack.total <= available:
        return config, stack
    advice = (
        f"set DB_POOL_MAX_SIZE={fitting} (the largest pool that fits)"
        if fitting is not None
        else "run fewer replicas"
    )
    for line in stack.table():
        click.echo(line)
    raise click.ClickException(
        "the stack would not fit the database: "
        + stack.explain(capacity, config.db_connection_reserve)
        + f"; to fit: {advice}, raise the server's max_connections, or put PgBouncer in"
        " front (DATABASE_URL to PgBouncer in transaction mode, DATABASE_DIRECT_URL to"
        " Postgres, DB_STATEMENT_CACHE_SIZE=0)"
    )


def prepare(names: Sequence[str], spec: str) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """For `microshop up`: the replicas of each of `names`, the environment of the
    children (replica URLs, the pool size), and lines to print about the plan."""
    config = load_config()
    replicas = replicas_option(spec, config)
    counts = {name: replicas.of(name) for name in names}
    environ = dict(os.environ)
    try:
        urls = replica_urls(config, counts, environ)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    capacity = _capacity(config)
    config, stack = _sized(names, counts, config, capacity, environ)
    env = {**environ, **urls, "DB_POOL_MAX_SIZE": str(config.db_pool_max_size)}
    env["MICROSHOP_REPLICAS"] = str(replicas)
    lines = [
        "connections: " + stack.explain(capacity, config.db_connection_reserve),
        *stack.table(),
    ]
    busy = capacity.in_use + stack.total
    if busy > capacity.max_connections - capacity.superuser_reserved:
        lines.append(
            f"warning: {capacity.in_use} connections to the server are open already;"
            " with this stack's it may run out"
        )
    return counts, env, lines


@click.command()
@click.option("--replicas", "spec", default="", metavar="N|SERVICE=N,...", help=REPLICAS_HELP)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Plan for a server with this max_connections (3 reserved for superusers) instead"
    " of asking DATABASE_URL's (e.g. for a Kubernetes deployment).",
)
def budget(spec: str, max_connections: int | None) -> None:
    """Show the Postgres connections the stack opens at most, and whether they fit.

    Each process opens its pool (DB_POOL_MAX_SIZE; unset, `microshop up` picks the largest
    that fits, up to 10) and one session connection (LISTEN, leader locks); the gateway
    keeps a small pool for the operator pages. Exit 1 when the stack does not fit.
    """
    try:
        config = Config.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    replicas = replicas_option(spec, config)
    names = services.available()
    counts = {name: replicas.of(name) for name in names}
    capacity = Capacity(max_connections, 3, 0) if max_connections is not None else _capacity(config)
    config, stack = _sized(names, counts, config, capacity, os.environ)
    click.echo(
        f"replicas {replicas}, pool size {config.db_pool_max_size}: "
        + stack.explain(capacity, config.db_connection_reserve)
    )
    for line in stack.table():
        click.echo(line)

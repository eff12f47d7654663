"""`microshop dead-letters ...` and `microshop events republish`: the consumers' queues.

Dead letters are the messages a consumer parked (`{queue}.parking`): list them, put them
back on the consumer's queue (all, or one event, the others staying parked in their order),
or discard one for good. `events republish` publishes stored events again to one
consumer's queue alone; its inbox drops what it has handled already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import asyncpg
import click
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from eventstore import Consumer, PostgresEventStore, create_pool
from eventstore.amqp import BROKER_ERRORS
from eventstore.consumer import NotParked, ParkedMessage, QueueNotDeclared, Redelivered
from eventstore.pg import Pool
from eventstore.store import COLUMNS

from ..config import Config, redacted
from ..topology import CONSUMER_QUEUES, consumers_for
from .common import load_config, run_async
from .eventlog import open_store

__all__ = ["dead_letters", "republish"]

T = TypeVar("T")

BROKER_TIMEOUT = 10.0
"""Seconds to reach RabbitMQ and ask for a queue before giving up with one line."""
BATCH = 1000

_encode = msgspec.json.Encoder().encode


def _config() -> Config:
    """The configuration, with the AMQP client's own complaints silenced: a broker that is
    down is one `Error:` line, not a log record and then the line."""
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    return load_config()


def _pick(consumers: dict[str, Consumer], queue: str) -> tuple[str, Consumer]:
    """The consumer of `queue`, given by name (`order-payments`) or as the queue itself."""
    for name, consumer in consumers.items():
        if queue in (name, consumer.queue):
            return name, consumer
    raise click.ClickException(f"unknown queue {queue!r}; known queues: {', '.join(consumers)}")


@contextlib.asynccontextmanager
async def _lazy_consumers(config: Config) -> AsyncIterator[dict[str, Consumer]]:
    """Every consumer of the system on a pool that never connects: parking queues need
    RabbitMQ alone, so these commands work while the database is down."""
    pool = await create_pool(
        config.session_database_url, application_name="microshop-cli", min_size=0, max_size=1
    )
    store = PostgresEventStore(pool, dsn=config.session_database_url)
    try:
        yield consumers_for(config, store)
    finally:
        await store.close()
        await pool.close()


async def _reach(config: Config, consumer: Consumer) -> int | None:
    """The parking queue's length (None: never declared), or one line when RabbitMQ is not
    there."""
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            return await consumer.parked_count()
    except BROKER_ERRORS as exc:
        raise click.ClickException(
            f"cannot reach RabbitMQ at AMQP_URL={redacted(config.amqp_url)}: "
            f"{type(exc).__name__}: {exc}".rstrip(": ")
        ) from None


async def _on_broker(config: Config, work: Awaitable[T]) -> T:
    try:
        return await work
    except BROKER_ERRORS as exc:
        raise click.ClickException(
            f"RabbitMQ at AMQP_URL={redacted(config.amqp_url)} failed midway: "
            f"{type(exc).__name__}: {exc} (what was not done is left as it was)"
        ) from None


def _describe(message: ParkedMessage) -> str:
    where = f" in {message.stream_id}" if message.stream_id else ""
    at = f", parked {message.parked_at:%Y-%m-%d %H:%M:%S} UTC" if message.parked_at else ""
    return (
        f"{message.event_type or '(no type)'}{where}, {message.attempts} attempt(s){at}: "
        f"{message.error or '(no reason recorded)'}"
    )


def _as_json(name: str, consumer: Consumer, message: ParkedMessage) -> str:
    return _encode(
        {
            "queue": name,
            "parking": consumer.parking,
            "event_id": message.event_id,
            "event_type": message.event_type,
            "stream_id": message.stream_id,
            "routing_key": message.routing_key,
            "attempts": message.attempts,
            "error": message.error,
            "parked_at": None if message.parked_at is None else message.parked_at.isoformat(),
            "body": message.body.decode("utf-8", errors="replace"),
        }
    ).decode()


# -- dead-letters --------------------------------------------------------------------------


@click.group(name="dead-letters")
def dead_letters() -> None:
    """Messages the consumers parked: list them, replay them, discard one.

    QUEUE is a consumer's name (e.g. order-payments) or its queue ({namespace}.{name}).
    """


@dead_letters.command(name="list")
@click.option("--queue", "-q", default=None, help="Only this consumer's parked messages.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Listed per queue (all counted).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parked message.")
def list_command(queue: str | None, limit: int, as_json: bool) -> None:
    """The parked messages of every consumer queue (or one), oldest first.

    For each: queue, event id, event type, stream, attempts, when it was parked and why.
    Listing leaves them parked.
    """
    config = _config()

    async def run() -> None:
        async with _lazy_consumers(config) as consumers:
            chosen = dict([_pick(consumers, queue)]) if queue is not None else consumers
            for name, consumer in chosen.items():
                count = await _reach(config, consumer)
                messages = await _on_broker(config, consumer.parked(limit)) if count else []
                for message in messages:
                    if as_json:
                        click.echo(_as_json(name, consumer, message))
                    else:
                        click.echo(f"{name}  {message.event_id or '(no id)'}  {_describe(message)}")
                if as_json:
                    continue
                if count is None:
                    click.echo(f"{name}: {consumer.parking} does not exist (never ran)")
                elif not count:
                    click.echo(f"{name}: nothing parked")
                else:
                    shown = f" (the oldest {len(messages)} listed)" if count > len(messages) else ""
                    click.echo(f"{name}: {count} parked in {consumer.parking}{shown}")

    run_async(run())


@dead_letters.command(name="replay")
@click.option("--queue", "-q", required=True, help="The consumer whose parked messages to replay.")
@click.option("--event-id", default=None, help="Only this event's message; the rest stay parked.")
def replay_command(queue: str, event_id: str | None) -> None:
    """Put parked messages back on their consumer's queue with a fresh attempt budget.

    All of them, or with --event-id only that event's (the others stay parked, in their
    order). The consumer's inbox skips an event it has handled already. Exit 1 when no
    message of --event-id is parked.
    """
    config = _config()

    async def run() -> None:
        async with _lazy_consumers(config) as consumers:
            name, consumer = _pick(consumers, queue)
            count = await _reach(config, consumer)
            try:
                if count is None and event_id is not None:
                    raise NotParked(consumer.parking, event_id)
                if not count and event_id is None:
                    click.echo(f"{name}: nothing parked, nothing to replay")
                    return
                moved = await _on_broker(config, consumer.replay_parked(event_id=event_id))
            except (NotParked, QueueNotDeclared) as exc:
                raise click.ClickException(str(exc)) from None
            what = f" of event {event_id}" if event_id is not None else ""
            plural = "" if moved == 1 else "s"
            click.echo(f"{name}: replayed {moved} message{plural}{what} to {consumer.queue}")

    run_async(run())


@dead_letters.command(name="discard")
@click.option("--queue", "-q", required=True, help="The consumer whose parked message to drop.")
@click.option("--event-id", required=True, help="The event whose parked message goes for good.")
def discard_command(queue: str, event_id: str) -> None:
    """Remove one event's parked message for good; the others stay parked, in their order.

    Exit 1 when no message of --event-id is parked.
    """
    config = _config()

    async def run() -> None:
        async with _lazy_consumers(config) as consumers:
            name, consumer = _pick(consumers, queue)
            count = await _reach(config, consumer)
            try:
                if count is None:
                    raise NotParked(consumer.parking, event_id)
                gone = await _on_broker(config, consumer.discard_parked(event_id))
            except NotParked as exc:
                raise click.ClickException(str(exc)) from None
            for message in gone:
                click.echo(f"{name}: discarded {event_id} for good: {_describe(message)}")

    run_async(run())


# -- events republish ----------------------------------------------------------------------

# $1: after this (stream version, global position), $2: which, $3: how many
_STREAM_ROWS = f"""
SELECT {COLUMNS} FROM events WHERE stream_version > $1 AND stream_id = $2
ORDER BY stream_version LIMIT $3"""
_RANGE_ROWS = f"""
SELECT {COLUMNS} FROM events WHERE global_position > $1 AND global_position <= $2
ORDER BY global_position LIMIT $3"""
_VERSION, _POSITION = 3, 0  # their columns in `COLUMNS`


async def _batches(
    pool: Pool, sql: str, which: object, after: int, column: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """Rows of `sql` a batch at a time, each batch after the last one's `column`."""
    while True:
        rows = await pool.fetch(sql, after, which, BATCH)
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        after = rows[-1][column]


def _positions(stream: str | None, first: int | None, last: int | None) -> tuple[int, int]:
    """The position range asked for ((0, 0) with --stream); a bad mix is a usage error."""
    if stream is not None:
        if first is not None or last is not None:
            raise click.UsageError("give --stream or --from-position/--to-position, not both")
        return 0, 0
    if first is None and last is None:
        raise click.UsageError("give --stream, or --from-position and --to-position")
    if first is None or last is None:
        raise click.UsageError("--from-position and --to-position go together")
    if first > last:
        raise click.UsageError(f"--from-position {first} is after --to-position {last}")
    return first, last


@click.command()
@click.option("--consumer", "name", required=True, help="The one consumer queue to publish to.")
@click.option("--stream", default=None, help="Every event of this stream.")
@click.option("--from-position", type=click.IntRange(min=1), default=None, help="First position.")
@click.option("--to-position", type=click.IntRange(min=1), default=None, help="Last position.")
def republish(
    name: str, stream: str | None, from_position: int | None, to_position: int | None
) -> None:
    """Publish stored events again to ONE consumer's queue (no other queue gets them).

    Either one --stream's events, or those from --from-position to --to-position (global
    positions, both included). They are encoded as the relay encodes them; only events the
    consumer is bound to go, the others are counted as skipped. Safe to repeat: the
    consumer's inbox drops an event it has handled already.
    """
    positions = _positions(stream, from_position, to_position)
    if name not in CONSUMER_QUEUES:
        raise click.ClickException(
            f"unknown consumer queue {name!r}; known queues: {', '.join(CONSUMER_QUEUES)}"
        )
    config = _config()

    async def run() -> tuple[Consumer, Redelivered]:
        async with open_store() as store:
            consumer = consumers_for(config, store)[name]
            if stream is not None:
                total = await store.pool.fetchval(
                    "SELECT count(*) FROM events WHERE stream_id = $1", stream
                )
                if not total:
                    raise click.ClickException(f"stream {stream!r} has no events")
                batches = _batches(store.pool, _STREAM_ROWS, stream, 0, _VERSION)
            else:
                first, last = positions
                total = await store.pool.fetchval(
                    "SELECT count(*) FROM events WHERE global_position BETWEEN $1 AND $2",
                    first,
                    last,
                )
                batches = _batches(store.pool, _RANGE_ROWS, last, first - 1, _POSITION)
            if await _reach(config, consumer) is None:  # declared together with the queue
                raise click.ClickException(str(QueueNotDeclared(consumer.queue)))
            console = Console(stderr=True)
            columns = (TextColumn("republishing"), BarColumn(), MofNCompleteColumn())
            with Progress(
                *columns,
                TimeRemainingColumn(),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            ) as bar:
                task = bar.add_task("events", total=total)

                def advance(count: int) -> None:
                    bar.advance(task, count)

                try:
                    done = await _on_broker(config, consumer.redeliver(batches, progress=advance))
                except QueueNotDeclared as exc:
                    raise click.ClickException(str(exc)) from None
            return consumer, done

    consumer, done = run_async(run())  # a database that fails is one line (`common.Main`)
    bindings = ", ".join(consumer.bindings)
    click.echo(
        f"sent {done.sent} event{'' if done.sent == 1 else 's'} to {consumer.queue}; "
        f"skipped {done.skipped} it is not bound to ({bindings})"
    )

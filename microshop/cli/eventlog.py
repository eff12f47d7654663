"""`microshop events ...` and `microshop projections ...`: the event log and its read models."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from eventstore import (
    START,
    Dropped,
    FoldFailed,
    Position,
    PostgresEventStore,
    Projection,
    RebuildInProgress,
    RecordedEvent,
    Row,
    Undecodable,
    checkpoints,
    create_pool,
    rebuild,
    replay,
)
from eventstore.check import LogCheck, check_log
from eventstore.checkpoints import held_back, lag
from eventstore.parked import ParkedEvent, count_parked, list_parked
from eventstore.projection import (
    RetryResult,
    read_correlated,
    read_stream_lenient,
    retry_parked,
    streams_starting,
)
from eventstore.rebuilding import RebuildResult, default_workers, interrupted
from eventstore.verifying import Difference, Verification, verify
from eventstore.versions import NotBuilt, Promotion, is_built, next_version, promote

from .. import contracts
from ..personal import vault_for
from ..topology import load_projections
from .common import load_config, run_async

__all__ = ["events", "projections"]

_encode = msgspec.json.Encoder(decimal_format="string").encode


def _json(value: Any, limit: int | None = None) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = msgspec.to_builtins(value, builtin_types=(), str_keys=True)
    text = _encode(value).decode()
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


@contextlib.asynccontextmanager
async def open_store() -> AsyncIterator[PostgresEventStore]:
    """The event store of DATABASE_URL (a database that cannot be used, or is not migrated,
    is one `Error:` line: `common.Main`)."""
    config = load_config()
    pool = await create_pool(
        config.session_database_url, application_name="microshop-cli", max_size=4
    )
    store = PostgresEventStore(pool, dsn=config.session_database_url, vault=vault_for(config, pool))
    try:
        yield store
    finally:
        await store.close()
        await pool.close()


def _projection(name: str) -> Projection:
    known = load_projections()
    if name not in known:
        raise click.BadParameter(f"unknown projection {name!r}; known: {', '.join(known)}")
    return known[name]


# -- events ------------------------------------------------------------------------------


class _Time(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 time; one without a zone is taken as UTC."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-03T14:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group()
def events() -> None:
    """Look at the event log: tail it, show a stream, replay a projection."""


def _unreadable_line(event: RecordedEvent, reason: str) -> str:
    return (
        f"cannot read {event.event_type} v{event.schema_version} at {event.position} "
        f"(event {event.event_id}, {event.stream_id}): {reason}"
    )


def _data_text(data: object, width: int) -> str:
    if isinstance(data, Undecodable):
        return f"cannot read: {data.reason}"
    if isinstance(data, Dropped):
        return "(dropped by an upcaster: nothing today)"
    return _json(data, width)


def _event_line(event: RecordedEvent) -> str:
    if isinstance(event.data, Undecodable):
        return _unreadable_line(event, event.data.reason)
    return (
        f"{event.global_position:>8}  {event.recorded_at:%Y-%m-%d %H:%M:%S}  "
        f"{event.stream_id}@{event.stream_version}  {event.event_type}  "
        f"{_data_text(event.data, 160)}"
    )


@events.command()
@click.option("--category", "-c", multiple=True, help="Only streams of this category (repeat).")
@click.option("--from-start", is_flag=True, help="Start at the first event, not the last 10.")
@click.option(
    "--last",
    "-n",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Events shown before following (0: only new ones).",
)
@click.option("--no-follow", is_flag=True, help="Exit when caught up instead of waiting.")
def tail(category: tuple[str, ...], from_start: bool, last: int, no_follow: bool) -> None:
    """Print the global log as it grows (commit-safe order), like `tail -f`."""
    load_projections()  # registers the services' event types for typed output
    wanted = set(category)

    async def run() -> None:
        async with open_store() as store:
            after = START if from_start else await _tail_start(store, last)
            watcher = store.watcher()
            async with watcher:
                while True:
                    seen = watcher.generation
                    async for batch in store.iter_all(after):
                        for event in batch:
                            if not wanted or event.category in wanted:
                                click.echo(_event_line(event))
                        after = batch[-1].position
                    if no_follow:
                        return
                    await watcher.wait(seen)

    with contextlib.suppress(KeyboardInterrupt):
        run_async(run())


async def _tail_start(store: PostgresEventStore, last: int) -> Position:
    """Where to start so that the last `last` events are shown (0: none, only new ones)."""
    if last == 0:
        return await store.head()
    row = await store.pool.fetchrow(
        """SELECT tx_id, global_position FROM (
               SELECT tx_id, global_position FROM events
               WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
               ORDER BY tx_id DESC, global_position DESC LIMIT $1) t
           ORDER BY tx_id, global_position LIMIT 1""",
        last,
    )
    if row is None:
        return START
    return Position(row[0], row[1] - 1) if row[1] > 0 else START


@events.command()
@click.argument("stream", required=False)
@click.option(
    "--correlation",
    metavar="ID",
    default=None,
    help="Every event of one correlation (a request and all it caused), across streams.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Events shown at most.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event instead.")
def show(stream: str | None, correlation: str | None, limit: int, as_json: bool) -> None:
    """Show the timeline of one STREAM, or of one correlation.

    STREAM may be the start of a stream id (`order-1f2e`) when only one stream starts so.
    --correlation ID shows every event whose metadata carries that correlation id, in log
    order, whatever its stream (it scans the log).
    """
    if (stream is None) == (correlation is None):
        raise click.UsageError("give a STREAM or --correlation ID (one of them)")
    load_projections()

    async def run() -> tuple[str, list[RecordedEvent]]:
        async with open_store() as store:  # an event this code cannot read shows as such
            if correlation is not None:
                found = await read_correlated(store, correlation, limit)
                if not found:
                    raise click.ClickException(f"no events with correlation id {correlation!r}")
                return f"correlation {correlation}", found
            assert stream is not None
            matches = await streams_starting(store, stream, 11)
            if not matches:
                raise click.ClickException(f"stream {stream!r} has no events")
            if len(matches) > 1:
                more = ", …" if len(matches) > 10 else ""
                raise click.ClickException(
                    f"{stream!r} is the start of several streams: "
                    + ", ".join(matches[:10])
                    + f"{more}; give more of the id"
                )
            return matches[0], (await read_stream_lenient(store, matches[0]))[:limit]

    title, found = run_async(run())
    if as_json:
        for event in found:
            click.echo(_json(msgspec.to_builtins(event, str_keys=True)))
        return
    table = Table(title=f"{title} — {len(found)} events", show_lines=False)
    columns = ["v", "recorded at", "type", "data", "correlation", "actor", "service"]
    if correlation is not None:
        columns[0] = "stream@v"
    for column in columns:
        table.add_column(column, overflow="fold")
    for event in found:
        meta = event.metadata
        table.add_row(
            str(event.stream_version)
            if correlation is None
            else f"{event.stream_id}@{event.stream_version}",
            f"{event.recorded_at:%Y-%m-%d %H:%M:%S.%f}"[:-3],
            event.event_type,
            _data_text(event.data, 120),
            meta.correlation_id or "",
            meta.actor or "",
            meta.service or "",
        )
    Console().print(table)


@events.command(name="replay")
@click.option("--projection", "name", required=True, help="The projection to fold.")
@click.option("--stream", default=None, help="Only this stream's events.")
@click.option(
    "--from-position", type=click.IntRange(min=0), default=None, help="Show from this position."
)
@click.option(
    "--to-position", type=click.IntRange(min=0), default=None, help="Stop after this position."
)
@click.option(
    "--as-of",
    type=_Time(),
    default=None,
    help="Only events recorded at or before this ISO 8601 time (e.g. 2026-12-03T14:00:00Z).",
)
@click.option("--final", is_flag=True, help="Only each row's state at the end, not every step.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead.")
def replay_command(
    name: str,
    stream: str | None,
    from_position: int | None,
    to_position: int | None,
    as_of: datetime | None,
    final: bool,
    as_json: bool,
) -> None:
    """Replay events through a projection in memory, printing its state after each.

    Nothing is written: use it to see how a read model came to look as it does. Events
    before --from-position are folded too (without being shown), so every state printed
    is the row as it really was; --as-of and --to-position cut the log off, so --final
    prints each row as it was at that time or position.
    """
    projection = _projection(name)
    if from_position is not None and to_position is not None and from_position > to_position:
        raise click.BadParameter("must not be after --to-position", param_hint="--from-position")

    async def run() -> tuple[int, int]:
        count = 0
        last: dict[Any, tuple[RecordedEvent, Row | None]] = {}
        async with open_store() as store:
            async for event, key, row in replay(
                store,
                projection,
                stream=stream,
                from_position=from_position,
                to_position=to_position,
                as_of=as_of,
            ):
                count += 1
                if final:
                    if key is not None:
                        last[key] = (event, row)
                elif as_json:
                    click.echo(_json(_replay_step(event, key, row)))
                else:
                    _print_step(projection, event, key, row)
        for key, (event, row) in last.items():
            if as_json:
                click.echo(_json(_replay_step(event, key, row)))
            else:
                _print_step(projection, event, key, row)
        return count, len(last)

    count, rows = run_async(run())
    if not as_json:
        at_end = f"; {rows} rows at the end" if final else ""
        click.echo(f"{count} events replayed into {name} (nothing written){at_end}")


def _replay_step(event: RecordedEvent, key: Any, row: Row | None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "global_position": event.global_position,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "recorded_at": event.recorded_at,
        "key": key,
        "row": row,
    }
    if isinstance(event.data, Undecodable):
        step["unreadable"] = event.data.reason
    return step


def _print_step(projection: Projection, event: RecordedEvent, key: Any, row: Row | None) -> None:
    click.echo(click.style(_event_line(event), bold=True))
    if isinstance(event.data, Undecodable):
        return  # the line says why; the fold goes on without it
    state = (
        "(deleted)"
        if row is None
        else json.dumps(json.loads(_json(row)), indent=2, ensure_ascii=False)
    )
    click.echo(f"  {projection.key}={key} ->\n" + _indent(state, "    "))


@events.command(name="check")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Failures listed (all are counted).",
)
def check_command(as_json: bool, show: int) -> None:
    """Decode the whole log with this code: counts per type and version, every failure.

    Run it before deploying new code against an old log. Exit 0 when every event
    decodes, 1 otherwise (a version newer than the code, a missing upcaster, a type no
    service registers).
    """
    load_projections()  # imports every service's events: the registry the services use

    async def run() -> LogCheck:
        async with open_store() as store:
            total = await store.pool.fetchval("SELECT count(*) FROM events")
            with _progress(transient=True, disable=as_json) as bar:
                task = bar.add_task("checking", total=total)
                return await check_log(store, progress=lambda n: bar.advance(task, n))

    started = time.perf_counter()
    result = run_async(run())
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(
            _json(
                {
                    "events": result.events,
                    "seconds": round(seconds, 3),
                    "ok": result.ok,
                    "counts": [
                        {"type": t, "schema_version": v, "events": n}
                        for (t, v), n in sorted(result.counts.items())
                    ],
                    "failures": [
                        dataclasses.asdict(f) | {"position": str(f.position)}
                        for f in result.failures
                    ],
                }
            )
        )
    else:
        console = Console()
        table = Table(title=f"{result.events} events in {seconds:.2f} s")
        for column in ("type", "version", "events", "failed"):
            table.add_column(column, justify="right" if column != "type" else "left")
        failed = collections.Counter((f.event_type, f.schema_version) for f in result.failures)
        for (event_type, version), count in sorted(result.counts.items()):
            table.add_row(event_type, str(version), str(count), str(failed[event_type, version]))
        console.print(table)
        for failure in result.failures[:show]:
            click.echo(
                f"cannot read {failure.event_type} v{failure.schema_version} at "
                f"{failure.position} (event {failure.event_id}, {failure.stream_id}): "
                f"{failure.reason}"
            )
        if len(result.failures) > show:
            click.echo(f"... and {len(result.failures) - show} more (--show N to list them)")
        click.echo("every event decodes" if result.ok else f"{len(result.failures)} events fail")
    raise SystemExit(0 if result.ok else 1)


@events.command(name="schemas")
@click.option("--write", "write_them", is_flag=True, help="Write the current versions' schemas.")
def schemas_command(write_them: bool) -> None:
    """Check (or --write) the JSON Schemas of the integration events in docs/events/.

    An integration event is one a consumer of another service accepts. Exit 1 when the
    producer's class no longer matches the schema of the version it writes, or a consumer
    accepts a version without a schema.
    """
    if write_them:
        for path in contracts.write():
            click.echo(f"wrote {path}")
        return
    problems = contracts.check()
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo(f"{len(contracts.accepted())} integration events match their published schemas")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


# -- projections -------------------------------------------------------------------------


@click.group()
def projections() -> None:
    """Read models: their position and lag, and rebuilds from the log."""


@projections.command()
def status() -> None:
    """Position, lag, runner liveness and parked events of every projection and the relay."""
    known = load_projections()

    async def run() -> None:
        async with open_store() as store:
            table = Table(title="projections")
            for column in (
                "name",
                "position",
                "lag (events)",
                "lag (s)",
                "updated",
                "runner",
                "parked",
            ):
                table.add_column(column)
            counts = await count_parked(store.pool)
            beats = {
                r[0]: r[1]
                for r in await store.pool.fetch(
                    "SELECT name, extract(epoch FROM now() - heartbeat_at) FROM checkpoints"
                    " WHERE heartbeat_at IS NOT NULL"
                )
            }
            for name in [*known, "relay"]:
                behind = await lag(store.pool, name)
                table.add_row(
                    name,
                    str(behind.position),
                    str(behind.events),
                    f"{behind.seconds:.1f}",
                    "never"
                    if behind.updated_at is None
                    else f"{behind.updated_at:%Y-%m-%d %H:%M:%S}",
                    _liveness(beats.get(name), is_projection=name in known),
                    str(counts.get(name, 0)) if name in known else "",
                )
            console = Console()
            console.print(table)
            for projection in known.values():
                await _print_next_version(console, store, projection)
            if any(counts.values()):
                console.print(
                    "[yellow]events are parked[/yellow]: `microshop projections errors` lists "
                    "them, `microshop projections retry NAME` applies them again"
                )
            for left in await interrupted(store.pool):
                done = f"{left.events:,}" + (f" of {left.total:,}" if left.total else "")
                console.print(
                    f"[yellow]an interrupted rebuild of {left.projection}[/yellow] left table "
                    f"{left.shadow} ({done} events, {left.phase} phase, last progress "
                    f"{left.updated_at:%Y-%m-%d %H:%M:%S}): `microshop projections rebuild "
                    f"{left.projection} --resume` finishes it, without --resume it starts over"
                )
            waiting, holders = await held_back(store.pool)
            if waiting:
                console.print(
                    f"[yellow]{waiting} committed events wait behind the fence[/yellow]: "
                    "an older transaction is still open"
                )
                for h in holders:
                    console.print(
                        f"  pid {h.pid} ({h.application or '?'} on {h.database}), "
                        f"{h.state}, open {h.age_seconds:.1f}s: {h.query}"
                    )

    run_async(run())


def _liveness(age: Any, *, is_projection: bool) -> str:
    """A runner beats every 5 s: older than 15 s, none is running."""
    if not is_projection:
        return ""
    if age is None:
        return "never ran"
    seconds = float(age)
    return (
        f"alive ({seconds:.0f} s ago)" if seconds < 15 else f"DOWN (last seen {seconds:.0f} s ago)"
    )


@projections.command(name="errors")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parked event.")
def errors_command(name: str | None, as_json: bool) -> None:
    """The events projection NAME (default: every projection) parked, with their errors."""
    if name is not None:
        _projection(name)

    async def run() -> list[ParkedEvent]:
        async with open_store() as store:
            return await list_parked(store.pool, name)

    found = run_async(run())
    for entry in found:
        if as_json:
            click.echo(_json(dataclasses.asdict(entry) | {"position": str(entry.position)}))
        else:
            click.echo(
                f"{entry.projection}: {entry.event_type} v{entry.schema_version} at "
                f"{entry.position} (event {entry.event_id}, {entry.stream_id}), "
                f"{entry.attempts} attempt(s), {entry.at:%Y-%m-%d %H:%M:%S}: {entry.error}"
            )
    if not as_json:
        click.echo(f"{len(found)} parked events" if found else "no parked events")


@projections.command(name="retry")
@click.argument("name")
@click.option("--event-id", type=click.UUID, default=None, help="Only this parked event.")
def retry_command(name: str, event_id: uuid.UUID | None) -> None:
    """Apply NAME's parked events again with this code (after fixing their cause).

    Each parked event's stream is folded anew up to the read model's position. Exit 1 if
    any still fails (it stays parked, with its new error).
    """
    projection = _projection(name)

    async def run() -> RetryResult:
        async with open_store() as store:
            if event_id is not None and not await list_parked(store.pool, name, event_id=event_id):
                raise click.ClickException(f"{name} has no parked event {event_id}")
            return await retry_parked(store, projection, event_id=event_id)

    result = run_async(run())
    for entry in result.applied:
        click.echo(f"applied {entry.event_type} (event {entry.event_id}, {entry.stream_id})")
    for entry, error in result.failing:
        click.echo(f"still failing {entry.event_type} (event {entry.event_id}): {error}")
    click.echo(f"{len(result.applied)} applied, {len(result.failing)} still failing")
    raise SystemExit(1 if result.failing else 0)


@projections.command(name="rebuild")
@click.argument("name")
@click.option("--strict", is_flag=True, help="Stop at an event this code cannot read.")
@click.option(
    "--resume", is_flag=True, help="Continue a rebuild that was interrupted (else start afresh)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=default_workers(),
    show_default="one per CPU, at most 4",
    help="Processes folding the log side by side (forked, two connections each).",
)
def rebuild_command(name: str, strict: bool, resume: bool, workers: int) -> None:
    """Rebuild projection NAME from the whole log into a shadow table, then swap it in.

    Reads of the current table keep working until the swap; a running service continues
    from the rebuilt position. Memory stays bounded whatever the log's size: rows are
    folded and written a chunk at a time, each chunk committed with the rebuild's
    progress, so a rebuild that was killed continues with --resume (without it, what the
    killed one left is thrown away and the rebuild starts again). An event this code
    cannot read is left out with one line saying so (with --strict the rebuild stops
    there and nothing is swapped in). A model whose rows each come from one stream is
    folded by several processes, each taking ranges of streams in turn.
    """
    projection = _projection(name)
    skipped: list[RecordedEvent] = []

    def unreadable(event: RecordedEvent) -> None:
        reason = event.data.reason if isinstance(event.data, Undecodable) else "?"
        line = _unreadable_line(event, reason)
        if strict:
            raise click.ClickException(f"{line} (--strict: nothing swapped in)")
        click.echo(line, err=True)
        skipped.append(event)

    async def run() -> None:
        async with open_store() as store:
            target = await _version_to_rebuild(store, projection)
            started = time.perf_counter()
            with _progress() as progress:
                task = progress.add_task(f"rebuild {target.name}", total=None)
                try:
                    result = await rebuild(
                        store,
                        target,
                        progress=lambda n: progress.advance(task, n),
                        expect=lambda n: progress.update(task, total=n),
                        unreadable=unreadable,
                        resume=resume,
                        workers=workers,
                    )
                except RebuildInProgress as exc:
                    raise click.ClickException(f"{exc}; try again when it has finished") from None
                except FoldFailed as exc:
                    raise click.ClickException(
                        f"{exc}; nothing swapped in; fix the projection (or the event), then"
                        f" `microshop projections rebuild {name} --resume` goes on from here"
                    ) from None
                progress.update(task, total=result.events, completed=result.events)
            seconds = time.perf_counter() - started
            if result.resumed:
                click.echo(f"resumed the interrupted rebuild of {name}")
            elif result.discarded:
                click.echo(f"threw away what an interrupted rebuild of {name} left")
            click.echo(
                f"rebuilt {target.name}: {result.rows} rows from {result.events} events in "
                f"{seconds:.1f}s ({result.events / max(seconds, 1e-9):,.0f} events/s"
                f"{_processes(result)}), position {result.position}"
                + (f"; {len(skipped)} unreadable events left out" if skipped else "")
            )

    run_async(run())


def _processes(result: RebuildResult) -> str:
    processes = 1 + len(result.worker_peaks_kb)
    return f" in {processes} processes" if processes > 1 else ""


def _progress(*, transient: bool = False, disable: bool = False) -> Progress:
    """The progress bar of long work over the log (on stderr)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
        disable=disable,
    )


@projections.command(name="verify")
@click.argument("name")
@click.option("--fix", is_flag=True, help="Repair the rows that differ (only those).")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Differing keys listed in full.",
)
def verify_command(name: str, fix: bool, show: int) -> None:
    """Compare projection NAME's table with the fold of the log up to its checkpoint.

    Folds the log as a rebuild does, in bounded memory, into a temporary table, and
    compares it with the read model row by row (a running service may keep applying
    meanwhile). Exit 0 when they are equal; 1 when some differ, listing their keys and
    columns. With --fix, just the differing rows are replaced by the log's (or deleted
    when the log has none), and the exit is 0 once they are repaired.
    """
    projection = _projection(name)

    def unreadable(event: RecordedEvent) -> None:
        reason = event.data.reason if isinstance(event.data, Undecodable) else "?"
        click.echo(_unreadable_line(event, reason) + " (left out)", err=True)

    async def run() -> Verification:
        async with open_store() as store:
            target = await _version_to_verify(store, projection)
            with _progress() as progress:
                task = progress.add_task(f"verify {target.name}", total=None)
                verifying = verify(
                    store,
                    target,
                    fix=fix,
                    progress=lambda n: progress.advance(task, n),
                    expect=lambda n: progress.update(task, total=n),
                    unreadable=unreadable,
                )
                try:
                    result = await verifying
                except FoldFailed as exc:
                    raise click.ClickException(str(exc)) from None
                progress.update(task, total=result.events, completed=result.events)
            return result

    result = run_async(run())
    where = f"the log up to position {result.position} ({result.events} events)"
    if result.ok:
        click.echo(f"{name}: all {result.rows} rows match {where}")
        return
    click.echo(f"{name}: {result.differing} of {result.rows} rows differ from {where}:")
    for difference in result.differences[:show]:
        click.echo("  " + _difference_line(projection, difference))
    if result.differing > show:
        click.echo(f"  … and {result.differing - show} more")
    if result.repaired:
        rows = "row" if len(result.repaired) == 1 else "rows"
        click.echo(
            f"repaired {len(result.repaired)} {rows}: " + ", ".join(map(str, result.repaired))
        )
        return
    if fix:  # all differed only at the snapshot: the runner has since made them right
        click.echo("nothing left to repair: the runner has since written them")
        return
    click.echo(f"`microshop projections verify {name} --fix` repairs them")
    raise SystemExit(1)


async def _version_to_verify(store: PostgresEventStore, projection: Projection) -> Projection:
    """The table this code's version of `projection` writes: the live one, or the next
    version's while it is built beside it."""
    live = await checkpoints.version_of(store.pool, projection.name)
    if live == projection.version:
        return projection
    following = next_version(projection)
    built = await is_built(store.pool, projection)
    if live > projection.version or not built:
        raise click.ClickException(
            f"{projection.name} is at version {live}, this code writes version "
            f"{projection.version}"
            + ("" if live > projection.version else ", which is not built yet: nothing to verify")
        )
    click.echo(f"{projection.name}: verifying version {projection.version} ({following.table})")
    return following


def _difference_line(projection: Projection, difference: Difference) -> str:
    key = f"{projection.key}={difference.key}"
    if difference.table is None:
        return f"{key}: missing from the table"
    if difference.log is None:
        return f"{key}: in the table, but the log has no such row"
    changes = (
        f"{c} table={_json(difference.table.get(c), 60)} log={_json(difference.log[c], 60)}"
        for c in difference.columns
    )
    return f"{key}: " + "; ".join(changes)


async def _version_to_rebuild(store: PostgresEventStore, projection: Projection) -> Projection:
    """The live table when this code writes its version; the next version's table (made
    first when missing) when this code's version is newer; an error when older."""
    live = await checkpoints.version_of(store.pool, projection.name)
    if live == projection.version:
        return projection
    if live > projection.version:
        raise click.ClickException(
            f"{projection.name} is at version {live}; this code writes version "
            f"{projection.version}: run the newer code"
        )
    following = next_version(projection)
    if await store.pool.fetchval("SELECT to_regclass($1)", following.table) is None:
        if not projection.ddl:
            raise click.ClickException(f"{projection.name} version {projection.version} has no ddl")
        await store.pool.execute(projection.ddl.format(table=following.table))
    click.echo(
        f"{projection.name}: version {live} is live; rebuilding version "
        f"{projection.version} beside it ({following.table})"
    )
    return following


@projections.command(name="promote")
@click.argument("name")
def promote_command(name: str) -> None:
    """Swap projection NAME's next version in for the live table.

    When this code's version of NAME is newer than the live table's, the services build
    the next version's table beside it (`<table>__v<N>`) and keep both up to date; this
    switches every reader to the new table in one transaction (reads wait for it, none
    fails), drops the old one, and moves the checkpoint, so runners of the old version
    stop writing.
    """
    projection = _projection(name)

    async def run() -> Promotion:
        async with open_store() as store:
            try:
                return await promote(store, projection)
            except NotBuilt as exc:
                raise click.ClickException(str(exc)) from None

    done = run_async(run())
    click.echo(
        f"promoted {name} to version {done.version}: {done.rows} rows, position "
        f"{done.position}; the version {done.retired} table is dropped"
    )


async def _print_next_version(
    console: Console, store: PostgresEventStore, projection: Projection
) -> None:
    """A line for a projection whose next version this code builds beside the live one."""
    live = await checkpoints.version_of(store.pool, projection.name)
    if projection.version <= live:
        return
    following = next_version(projection)
    if not await is_built(store.pool, projection):
        state = "not built yet (the service builds it; or `microshop projections rebuild`)"
    else:
        behind = await lag(store.pool, following.name)
        state = (
            f"built in {following.table}, {behind.events} events behind: "
            f"`microshop projections promote {projection.name}` swaps it in"
        )
    console.print(
        f"[yellow]{projection.name}[/yellow]: version {live} is live, version "
        f"{projection.version} {state}"
    )

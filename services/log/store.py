"""The `logs` table: batch inserts, the filtered search behind GET /api/logs, retention."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import asyncpg

from eventstore.pg import Pool

from .lines import LogRow

__all__ = ["LogQuery", "delete_older_than", "insert_rows", "search"]

log = logging.getLogger(__name__)

_COLUMNS = ("ts", "service", "level", "message", "correlation_id", "request_id", "line")
_INSERT_ONE = f"INSERT INTO logs ({', '.join(_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
_DELETE_BATCH = 10_000
_DELETE_OLD = """
DELETE FROM logs WHERE id IN (
    SELECT id FROM logs WHERE ts < now() - make_interval(days => $1) LIMIT $2
)"""


@dataclasses.dataclass(frozen=True, slots=True)
class LogQuery:
    """GET /api/logs after validation: every filter optional, newest first."""

    service: str | None = None
    level: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    q: str | None = None
    limit: int = 100


def _record(row: LogRow) -> tuple[Any, ...]:
    return (
        row.ts,
        row.service,
        row.level,
        row.message,
        row.correlation_id,
        row.request_id,
        row.line,
    )


async def insert_rows(pool: Pool, rows: list[LogRow]) -> tuple[int, int]:
    """Store `rows` with one COPY; `(stored, rejected)`.

    A line Postgres refuses (e.g. a `\\u0000` in a string, which jsonb cannot hold) must not
    hold back the rest of its batch: then the rows go in one by one and the refused ones
    are counted as rejected.
    """
    if not rows:
        return 0, 0
    records = [_record(row) for row in rows]
    async with pool.acquire() as conn:
        try:
            await conn.copy_records_to_table("logs", records=records, columns=_COLUMNS)
            return len(records), 0
        except asyncpg.DataError as exc:
            log.warning(
                "a log batch has a line Postgres refuses (%s); storing it line by line", exc
            )
        stored = 0
        for record in records:
            try:
                await conn.execute(_INSERT_ONE, *record)
                stored += 1
            except asyncpg.DataError:
                pass
        return stored, len(records) - stored


async def search(pool: Pool, query: LogQuery) -> list[dict[str, Any]]:
    """The stored lines matching every given filter, newest first, each with its `id`."""
    clauses: list[str] = []
    args: list[Any] = []

    def where(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(f"${len(args)}"))

    if query.service:
        where("service = {}", query.service)
    if query.level:
        where("level = {}", query.level)
    if query.correlation_id:
        where("correlation_id = {}", query.correlation_id)
    if query.request_id:
        where("request_id = {}", query.request_id)
    if query.since:
        where("ts >= {}", query.since)
    if query.until:
        where("ts < {}", query.until)
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where("message ILIKE {}", f"%{escaped}%")
    args.append(query.limit)
    sql = (
        "SELECT id, line FROM logs"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + f" ORDER BY ts DESC, id DESC LIMIT ${len(args)}"
    )
    rows = await pool.fetch(sql, *args)
    return [{"id": row["id"], **row["line"]} for row in rows]


async def delete_older_than(pool: Pool, days: int) -> int:
    """Remove lines older than `days`, in batches (short transactions); how many went."""
    deleted = 0
    while True:
        status = await pool.execute(_DELETE_OLD, days, _DELETE_BATCH)
        count = int(status.split()[-1])
        deleted += count
        if count < _DELETE_BATCH:
            return deleted

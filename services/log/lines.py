"""Shipped log batches (NDJSON) into rows for the `logs` table; pure, no I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt

import msgspec

from microshop.logs import LEVELS

__all__ = ["LogRow", "Parsed", "normalize_level", "parse_batch"]


class _Line(msgspec.Struct):
    """The fields of a line that become columns; the rest stays in `line`."""

    ts: str | None = None
    service: str | None = None
    level: str | None = None
    message: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None


_decode_line = msgspec.json.Decoder(_Line).decode
_MAX_ID = 128


@dataclasses.dataclass(frozen=True, slots=True)
class LogRow:
    ts: dt.datetime
    service: str
    level: str
    message: str
    correlation_id: str | None
    request_id: str | None
    line: msgspec.Raw  # the whole line, stored as is


@dataclasses.dataclass(slots=True)
class Parsed:
    rows: list[LogRow]
    rejected: int


def normalize_level(level: str) -> str:
    """`WARNING` → `WARN`, `CRITICAL` → `FATAL`, others upper-cased."""
    upper = level.strip().upper()
    return LEVELS.get(upper, upper)


def _timestamp(raw: str | None, received: dt.datetime) -> dt.datetime:
    if raw:
        try:
            ts = dt.datetime.fromisoformat(raw)
        except ValueError:
            return received
        return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return received


def _id(value: str | None) -> str | None:
    return value[:_MAX_ID] if value else None


def parse_batch(body: bytes, *, sender: str | None, received: dt.datetime) -> Parsed:
    """The rows of one shipped batch; lines that are not JSON objects are counted, skipped."""
    rows: list[LogRow] = []
    rejected = 0
    for text in body.splitlines():
        raw = text.strip()
        if not raw:
            continue
        try:
            line = _decode_line(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            rejected += 1
            continue
        rows.append(
            LogRow(
                ts=_timestamp(line.ts, received),
                service=(line.service or sender or "unknown")[:64],
                level=normalize_level(line.level or "INFO")[:16],
                message=line.message or "",
                correlation_id=_id(line.correlation_id),
                request_id=_id(line.request_id),
                line=msgspec.Raw(raw),
            )
        )
    return Parsed(rows, rejected)

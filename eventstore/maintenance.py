"""The one sanctioned way to change stored events, for the owner of the `events` table only.

The log is append-only: trigger `events_append_only` refuses UPDATE, DELETE and TRUNCATE
on `events` for everyone, the application included (and a deployment with a separate
application role grants it only SELECT and INSERT). `editing_events` lifts the trigger
inside one transaction: `ALTER TABLE ... DISABLE TRIGGER` needs the table's owner, takes a
lock that holds appends back until the transaction ends, and the trigger is enabled again
before the commit, so no other session ever sees it off. Nothing in the application uses
it; the owner's tools do: `microshop seed --reset` (wipe a database), the sealing of
personal data stored before sealing existed (`seal_plain_events`), and benchmarks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import NamedTuple

import asyncpg

from .errors import AppendOnly
from .events import EventRegistry
from .personal import REDACTED, PersonalFields, personal_fields
from .pg import Conn
from .sealing import seal_value
from .vault import PersonalDataVault

__all__ = ["TRIGGER", "PlainEvents", "editing_events", "plain_events", "seal_plain_events"]

TRIGGER = "events_append_only"


@contextlib.asynccontextmanager
async def editing_events(conn: Conn) -> AsyncIterator[None]:
    """A transaction on `conn` in which `events` may be changed (AppendOnly for anyone
    but the table's owner). An error inside rolls everything back, the trigger included."""
    async with conn.transaction():
        try:
            await conn.execute(f"ALTER TABLE events DISABLE TRIGGER {TRIGGER}")
        except asyncpg.InsufficientPrivilegeError:
            raise AppendOnly(
                "only the owner of the events table may change stored events"
                " (connect with the owner role's DATABASE_URL)"
            ) from None
        yield
        await conn.execute(f"ALTER TABLE events ENABLE TRIGGER {TRIGGER}")


def _personal_types(registry: EventRegistry) -> dict[str, PersonalFields]:
    found = {}
    for name in registry.names():
        fields = personal_fields(registry.class_of(name))
        if fields is not None:
            found[name] = fields
    return found


class PlainEvents(NamedTuple):
    """What `seal_plain_events` did: values sealed (live subjects) and erased (forgotten)."""

    sealed: int
    erased: int


async def plain_events(conn: Conn, registry: EventRegistry, stream_id: str) -> int:
    """How many events of `stream_id` hold personal data in plain text (stored before
    sealing existed)."""
    types = _personal_types(registry)
    rows = await conn.fetch(
        "SELECT event_type, data::text FROM events WHERE stream_id = $1 AND event_type = ANY($2)",
        stream_id,
        list(types),
    )
    return sum(1 for r in rows if types[r[0]].plain_in(json.loads(r[1])))


async def seal_plain_events(
    conn: Conn, vault: PersonalDataVault, registry: EventRegistry, *, batch_size: int = 1000
) -> PlainEvents:
    """Seal, in place, every personal value the log holds in plain text (written before
    sealing existed): with its subject's key, or `REDACTED` for a forgotten subject. The
    rows keep their schema version (an upcaster reads a sealed value as it is); only the
    values change. Owner only (`editing_events`); one transaction, appends wait for it."""
    types = _personal_types(registry)
    sealed = erased = 0
    async with editing_events(conn):
        after = 0
        while True:
            rows = await conn.fetch(
                "SELECT global_position, event_type, data::text FROM events"
                " WHERE global_position > $1 AND event_type = ANY($2)"
                " ORDER BY global_position LIMIT $3",
                after,
                list(types),
                batch_size,
            )
            if not rows:
                return PlainEvents(sealed, erased)
            after = rows[-1][0]
            for position, event_type, text in rows:
                data, fields = json.loads(text), types[event_type]
                plain = fields.plain_in(data)
                if not plain:
                    continue
                subject = str(data[fields.subject])
                key = await vault.data_key(subject, conn=conn, create=True)
                if key is None:  # forgotten while its data was plain: erase it now
                    data.update(dict.fromkeys(plain, REDACTED))
                    erased += len(plain)
                else:
                    data.update({n: seal_value(key, subject, data[n]) for n in plain})
                    sealed += len(plain)
                await conn.execute(
                    "UPDATE events SET data = $2::text::jsonb WHERE global_position = $1",
                    position,
                    json.dumps(data),
                )

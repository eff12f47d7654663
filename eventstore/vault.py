"""Per-person data keys in Postgres, and the sealing of events' personal fields with them.

Guarantees:
- `seal` returns the event with every personal field (`personal.personal()`) sealed with
  its subject's data key, creating the key the first time (in the caller's transaction
  when given one). A forgotten subject's data is refused (`SubjectForgotten`): nothing
  new about a forgotten person is ever stored.
- `reveal` opens an event's sealed fields for code that holds the key-encryption key; once
  the subject's key is destroyed they read as `REDACTED`, never as an error.
- `forget` destroys the subject's data key. Its row stays, without the key, as the
  tombstone that refuses new data; every sealed copy of the person's data (events rows,
  messages, backups of the log) is unreadable from then on.
- `rewrap` moves every data key to the current key-encryption key (a KEK rotation).

Keys live in `personal_keys` (subject, wrapped_key, kek_id, created_at, forgotten_at); a
data key is only ever in memory unwrapped, for the one call that needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .errors import KeyUnavailable, SubjectForgotten
from .personal import REDACTED, is_sealed, personal_fields
from .pg import Executor, Pool
from .sealing import KeyEncryptionKeys, new_data_key, open_value, seal_value, unwrap_key, wrap_key

__all__ = ["KeyCounts", "PersonalDataVault"]

T = TypeVar("T")

_KEY = "SELECT wrapped_key, kek_id FROM personal_keys WHERE subject = $1"
_CREATE = """
INSERT INTO personal_keys (subject, wrapped_key, kek_id) VALUES ($1, $2, $3)
ON CONFLICT (subject) DO NOTHING RETURNING subject"""
_FORGET = """
INSERT INTO personal_keys (subject, wrapped_key, kek_id, forgotten_at)
VALUES ($1, NULL, NULL, now())
ON CONFLICT (subject) DO UPDATE
SET wrapped_key = NULL, kek_id = NULL,
    forgotten_at = coalesce(personal_keys.forgotten_at, excluded.forgotten_at)"""


class KeyCounts(NamedTuple):
    """Data keys by the key-encryption key that wraps them, and the forgotten subjects."""

    by_kek: dict[str, int]
    forgotten: int


class PersonalDataVault:
    """Seals and opens personal data with per-subject keys kept in `pool`'s database.

    `keys` is the key-encryption key set, or a function giving it: then it is read the
    first time a key is needed, so a process that never touches personal data never
    needs it.
    """

    def __init__(
        self, pool: Pool, keys: KeyEncryptionKeys | Callable[[], KeyEncryptionKeys]
    ) -> None:
        self.pool = pool
        self._keys = keys

    @property
    def keys(self) -> KeyEncryptionKeys:
        if not isinstance(self._keys, KeyEncryptionKeys):
            self._keys = self._keys()
        return self._keys

    # -- sealing and opening -----------------------------------------------------------

    async def seal(self, event: T, *, conn: Any = None) -> T:
        """`event` with its plain personal fields sealed (those sealed already stay)."""
        fields = personal_fields(type(event))
        if fields is None:
            return event
        plain = {
            name: value
            for name in fields.fields
            if isinstance(value := getattr(event, name), str) and not is_sealed(value)
        }
        if not plain:
            return event
        subject = fields.subject_of(event)
        key = await self.data_key(subject, conn=conn, create=True)
        if key is None:
            raise SubjectForgotten(subject)
        sealed = {name: seal_value(key, subject, value) for name, value in plain.items()}
        return dataclasses.replace(event, **sealed)  # type: ignore[type-var]

    async def reveal(self, event: T) -> T:
        """`event` with its sealed personal fields opened, or `REDACTED` when the subject's
        key is gone. Raises `SealBroken` for a value that does not open under the key it
        should (changed bytes), and `KeyUnavailable` for a missing key-encryption key."""
        fields = personal_fields(type(event))
        if fields is None:
            return event
        sealed = {n: v for n in fields.fields if is_sealed(v := getattr(event, n))}
        if not sealed:
            return event
        subject = fields.subject_of(event)
        key = await self.data_key(subject)
        opened = {
            name: REDACTED if key is None else open_value(key, subject, value)
            for name, value in sealed.items()
        }
        return dataclasses.replace(event, **opened)  # type: ignore[type-var]

    async def data_key(
        self, subject: str, *, conn: Any = None, create: bool = False
    ) -> bytes | None:
        """`subject`'s data key; None when it was destroyed (or, unless `create`, never
        made). With `create`, a subject without a key gets one."""
        executor: Executor = conn if conn is not None else self.pool
        row = await executor.fetchrow(_KEY, subject)
        if row is None and create:
            keys, key = self.keys, new_data_key()
            made = await executor.fetchval(
                _CREATE, subject, wrap_key(keys.current, subject, key), keys.current_id
            )
            if made is not None:
                return key
            row = await executor.fetchrow(_KEY, subject)  # another writer made it meanwhile
        if row is None or row["wrapped_key"] is None:
            return None
        return unwrap_key(self.keys.by_id(row["kek_id"]), subject, row["wrapped_key"])

    # -- forgetting ----------------------------------------------------------------------

    async def forget(self, subject: str, *, conn: Any = None) -> bool:
        """Destroy `subject`'s data key (in `conn`'s transaction when given): True when a
        key was destroyed, False when there was none (or it was destroyed before)."""
        executor: Executor = conn if conn is not None else self.pool
        had = await executor.fetchval(
            "SELECT wrapped_key IS NOT NULL FROM personal_keys WHERE subject = $1 FOR UPDATE",
            subject,
        )
        await executor.execute(_FORGET, subject)
        return bool(had)

    async def forgotten(self, subject: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT forgotten_at IS NOT NULL FROM personal_keys WHERE subject = $1", subject
            )
        )

    # -- key-encryption keys -------------------------------------------------------------

    async def counts(self) -> KeyCounts:
        rows = await self.pool.fetch(
            "SELECT kek_id, count(*) AS n FROM personal_keys GROUP BY kek_id ORDER BY kek_id"
        )
        by_kek = {r["kek_id"]: int(r["n"]) for r in rows if r["kek_id"] is not None}
        forgotten = sum(int(r["n"]) for r in rows if r["kek_id"] is None)
        return KeyCounts(by_kek, forgotten)

    async def rewrap(self, *, batch_size: int = 1000) -> int:
        """Wrap every data key with the current key-encryption key; the number rewrapped.
        Each batch commits on its own, so an interrupted run simply continues next time;
        a key wrapped by a KEK that is not configured stops it before anything changes."""
        keys = self.keys
        unknown = [kek for kek in (await self.counts()).by_kek if not _known(keys, kek)]
        if unknown:
            raise KeyUnavailable(
                f"data keys are wrapped by key-encryption keys {', '.join(unknown)}, which are"
                " not configured: list them after the current one in PII_KEY_ENCRYPTION_KEY"
            )
        done = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT subject, wrapped_key, kek_id FROM personal_keys"
                    " WHERE kek_id <> $1 ORDER BY subject LIMIT $2 FOR UPDATE",
                    keys.current_id,
                    batch_size,
                )
                if not rows:
                    return done
                await conn.executemany(
                    "UPDATE personal_keys SET wrapped_key = $2, kek_id = $3 WHERE subject = $1",
                    [
                        (
                            r["subject"],
                            wrap_key(
                                keys.current,
                                r["subject"],
                                unwrap_key(keys.by_id(r["kek_id"]), r["subject"], r["wrapped_key"]),
                            ),
                            keys.current_id,
                        )
                        for r in rows
                    ],
                )
                done += len(rows)


def _known(keys: KeyEncryptionKeys, kek: str) -> bool:
    try:
        keys.by_id(kek)
    except KeyUnavailable:
        return False
    return True

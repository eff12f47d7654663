"""Postgres side of login throttling: attempts per account and client, kept for one window.

Every attempt is written *before* the password is checked and deleted when it succeeds, so
concurrent guesses from one client cannot all slip past the count together: the check and
the write are one transaction under a lock per client. The state lives in Postgres, not in
a process, so every replica of auth-service counts the same attempts. Rows older than the
window count for nothing and are swept. The account is kept as the SHA-256 of its
normalized email, never the address. The policy itself is pure: `domain.throttle`.
"""

from __future__ import annotations

import dataclasses
import hashlib

from eventstore.pg import Executor, Pool

from .domain import normalize_email
from .domain.throttle import RecentAttempts, ThrottlePolicy, wait_before

__all__ = ["LoginAttempt", "LoginThrottle", "forget_attempts"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('microshop:login:' || $1, 0))"

# The clock is read after the lock is taken (not the transaction's start, `now()`): the
# attempt that waited for the lock is later than the one it waited for.
_RECENT = """
WITH clock AS (SELECT clock_timestamp() AS now), recent AS (
    SELECT account, known, client, failed_at FROM login_failures
    WHERE (account = $1 OR client = $2)
      AND failed_at > (SELECT now FROM clock) - make_interval(secs => $3)
), client_accounts AS (
    SELECT max(failed_at) AS last FROM recent WHERE client = $2 AND known
    GROUP BY account ORDER BY last DESC OFFSET $4 - 1 LIMIT 1
)
SELECT count(*) FILTER (WHERE account = $1 AND client = $2) AS pair,
       extract(epoch FROM (SELECT now FROM clock)
                          - max(failed_at) FILTER (WHERE account = $1 AND client = $2))
           AS since_last,
       count(*) FILTER (WHERE account = $1) AS account,
       (SELECT extract(epoch FROM last + make_interval(secs => $3) - (SELECT now FROM clock))
        FROM client_accounts) AS client_wait
FROM recent
"""


@dataclasses.dataclass(frozen=True, slots=True)
class LoginAttempt:
    """Who tries which account: the account as the digest of its normalized email, and
    whether it exists (only tries at existing accounts count towards a client's limit)."""

    account: bytes
    known: bool
    client: str

    @classmethod
    def of(cls, email: str, client: str, *, known: bool) -> LoginAttempt:
        return cls(hashlib.sha256(normalize_email(email).encode()).digest(), known, client)


class LoginThrottle:
    def __init__(self, pool: Pool, policy: ThrottlePolicy) -> None:
        self.pool = pool
        self.policy = policy

    async def admit(self, attempt: LoginAttempt) -> float:
        """Record the attempt; the seconds it must wait first (0: check the password now)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK, attempt.client)
            row = await conn.fetchrow(
                _RECENT,
                attempt.account,
                attempt.client,
                float(self.policy.window),
                self.policy.client_accounts,
            )
            assert row is not None
            seen = RecentAttempts(
                pair=row["pair"],
                since_last=float(row["since_last"] or 0),
                account=row["account"],
                client_wait=max(0.0, float(row["client_wait"] or 0)),
            )
            await conn.execute(
                "INSERT INTO login_failures (account, known, client, failed_at)"
                " VALUES ($1, $2, $3, clock_timestamp())",
                attempt.account,
                attempt.known,
                attempt.client,
            )
        return wait_before(seen, self.policy)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: this client's attempts on this account are forgiven."""
        await self.pool.execute(
            "DELETE FROM login_failures WHERE account = $1 AND client = $2",
            attempt.account,
            attempt.client,
        )

    async def sweep(self) -> int:
        """Delete the attempts older than the window; how many went."""
        status = await self.pool.execute(
            "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => $1)",
            float(self.policy.window),
        )
        return int(status.rpartition(" ")[2])


async def forget_attempts(executor: Executor, email: str) -> None:
    """Delete the attempts at the account of `email` (whoever made them): forgetting a
    person leaves not even the digest of their address behind."""
    account = LoginAttempt.of(email, "", known=True).account
    await executor.execute("DELETE FROM login_failures WHERE account = $1", account)

"""When a password may be tried: a pure policy over the recent unsuccessful attempts.

Attempts are counted over a sliding window (`LOGIN_LOCKOUT_SECONDS`) three ways, and a
stranger can use none of them to lock an account's owner out on another client:

- **account + client.** `max_failures` attempts are free; then each further one must wait
  after the previous attempt, 1/256 of the window at first and twice as long each time, up
  to the whole window (300 s: 1.2 s, 2.3 s, 4.7 s … 300 s). Attempts made while waiting
  are refused and count too, so hammering only makes the wait longer. This is what stops
  one client guessing one password: about one guess per window once it is spent.
- **account, from every client.** When an account has `account_alarm` attempts in the
  window (guessing spread over many addresses), it is under attack: a client that failed on
  it once waits the whole window before its next try. A client with no failure on it — the
  owner on their own device — still gets its attempt, so the alarm slows guessing without
  locking anyone out.
- **client, over accounts.** A client that failed on `client_accounts` different existing
  accounts in the window (credential stuffing) waits until the oldest of them leaves the
  window. This one does refuse everyone behind that address, for at most the window; it
  takes that many distinct real accounts, which a household or office mistyping its own
  passwords does not reach, and tries at addresses that have no account (a fuzzer's, a
  typo's) compromise nobody and do not count. Whether an address has an account is no
  secret this adds to: registering it says so.

Refusing happens before the password is checked, from the counts alone, so a refusal says
nothing about whether the password was right.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "ACCOUNT_FACTOR",
    "CLIENT_FACTOR",
    "DOUBLINGS",
    "RecentAttempts",
    "ThrottlePolicy",
    "wait_before",
]

CLIENT_FACTOR = 4
"""A client may fail on this many times `max_failures` distinct accounts per window."""
ACCOUNT_FACTOR = 4
"""An account is under attack after this many times `max_failures` attempts per window."""
DOUBLINGS = 8
"""The wait after the free attempts starts at window / 2**DOUBLINGS and doubles up to it."""


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures: int
    """Free unsuccessful attempts of one account from one client."""
    window: float
    """Seconds an attempt counts for; also the longest wait."""
    client_accounts: int
    """Distinct existing accounts one client may fail on in a window."""
    account_alarm: int
    """Attempts on one account, from all clients, that put it under attack."""

    @classmethod
    def of(cls, max_failures: int, window: float) -> ThrottlePolicy:
        return cls(
            max_failures, window, CLIENT_FACTOR * max_failures, ACCOUNT_FACTOR * max_failures
        )

    def delay_after(self, attempts: int, *, under_attack: bool) -> float:
        """How long after its last attempt a client with `attempts` on an account waits."""
        if under_attack:
            return self.window if attempts >= 1 else 0.0
        if attempts < self.max_failures:
            return 0.0
        beyond = attempts - self.max_failures
        return self.window / 2.0 ** max(0, DOUBLINGS - beyond)


@dataclasses.dataclass(frozen=True, slots=True)
class RecentAttempts:
    """Unsuccessful attempts within the window, as seen before a new one."""

    pair: int
    """Of this account from this client."""
    since_last: float
    """Seconds since the last of those (meaningless when `pair` is 0)."""
    account: int
    """Of this account from every client."""
    client_wait: float
    """Seconds until this client has failed on fewer than `client_accounts` existing
    accounts (0: it has)."""


def wait_before(seen: RecentAttempts, policy: ThrottlePolicy) -> float:
    """Seconds before this client may try this account's password (0: now)."""
    under_attack = seen.account >= policy.account_alarm
    delay = policy.delay_after(seen.pair, under_attack=under_attack)
    pair_wait = delay - seen.since_last if delay > 0 else 0.0
    return max(0.0, pair_wait, seen.client_wait)

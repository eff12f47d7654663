"""The login throttle's policy, pure: given the recent attempts, how long to wait."""

from __future__ import annotations

import pytest

from services.auth.domain.throttle import RecentAttempts, ThrottlePolicy, wait_before

POLICY = ThrottlePolicy.of(max_failures=5, window=256.0)


def seen(pair: int = 0, since_last: float = 0.0, account: int = 0, client: float = 0.0) -> float:
    return wait_before(RecentAttempts(pair, since_last, account, client), POLICY)


def test_the_limits_follow_the_free_attempts() -> None:
    assert (POLICY.client_accounts, POLICY.account_alarm) == (20, 20)


@pytest.mark.parametrize(
    ("pair", "delay"),
    [(0, 0), (4, 0), (5, 1), (6, 2), (7, 4), (12, 128), (13, 256), (40, 256)],
)
def test_after_the_free_attempts_the_wait_doubles_up_to_the_window(pair: int, delay: int) -> None:
    assert seen(pair=pair) == delay
    assert seen(pair=pair, since_last=0.5) == max(0.0, delay - 0.5)  # counted from the last


def test_an_account_under_attack_gives_each_client_one_try_per_window() -> None:
    assert seen(pair=0, account=20) == 0  # a client new to the account: the owner gets in
    assert seen(pair=1, account=20, since_last=6) == 250
    assert seen(pair=1, account=19) == 0


def test_a_client_over_its_accounts_waits_whatever_the_pair() -> None:
    assert seen(client=42.5) == 42.5
    assert seen(pair=5, client=0.5) == 1


def test_free_attempts_never_wait_whatever_the_clocks_say() -> None:
    # an attempt that queued behind a later one sees it "in the future"
    assert seen(pair=3, since_last=-0.2) == 0

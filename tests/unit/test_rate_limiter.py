"""The gateway's per-client token buckets: limits, refills, and memory that stays bounded."""

from __future__ import annotations

from services.gateway.edge import RateLimiter


def test_a_client_gets_its_burst_then_waits_for_the_refill() -> None:
    limiter = RateLimiter(60)  # one token a second
    assert all(limiter.take("a", now=100.0) == 0.0 for _ in range(60))
    assert limiter.take("a", now=100.0) == 1.0
    assert limiter.take("b", now=100.0) == 0.0  # others are not affected
    assert limiter.take("a", now=101.0) == 0.0  # one token back after a second
    assert limiter.take("a", now=101.0) > 0.0


def test_buckets_idle_for_a_refill_period_are_forgotten() -> None:
    limiter = RateLimiter(60)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}", now=0.0)
    limiter.take("late", now=30.0)
    assert len(limiter) == 1001  # nobody is full again yet
    limiter.take("later", now=61.0)
    assert len(limiter) == 2  # the first thousand refilled: nothing to remember


def test_forgetting_a_full_bucket_changes_no_answer() -> None:
    """Against token buckets that are never forgotten, over bursts, pauses and refills."""
    limiter = RateLimiter(60)
    kept: dict[str, tuple[float, float]] = {}  # client -> (tokens, at), forever

    def take_kept(client: str, now: float) -> float:
        tokens, at = kept.get(client, (60.0, now))
        tokens = min(60.0, tokens + (now - at))
        kept[client] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
        return 0.0 if tokens >= 1.0 else 1.0 - tokens

    for now in (0.0, 0.5, 59.9, 61.0, 61.2, 130.0, 200.0):
        for i in range(70):
            client = "ab"[i % 2]
            assert limiter.take(client, now=now) == take_kept(client, now), (client, now)
    assert len(limiter) == 2


def test_past_max_clients_the_least_recently_seen_go_first() -> None:
    limiter = RateLimiter(60, max_clients=100)
    for i in range(500):
        limiter.take(f"c{i}", now=float(i) / 1000)
    assert len(limiter) == 100
    assert limiter.take("c499", now=1.0) == 0.0
    for _ in range(59):
        limiter.take("c499", now=1.0)
    assert limiter.take("c499", now=1.0) > 0.0  # its bucket was kept: it is still limited

"""The simulated payment provider: it waits `latency_ms`, then charges with probability
`success_rate`.

The settings are per process: `PUT /internal/settings` changes the simulator of the process
that answers it, from that moment on (a request already waiting out its latency rolls with
the new success rate). With a seed the dice are `random.Random(seed)`, so a process fed the
same requests one after another gives the same outcomes; concurrent requests roll in
whatever order they finish their latency. Payment ids are random UUIDs either way: two
processes started with the same seed must not hand out the same ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from typing import Protocol

from microshop.config import Config

from .domain import Approved, Declined, ProviderOutcome

__all__ = ["DECLINE_REASON", "MAX_LATENCY_MS", "PaymentProvider", "PaymentSimulator", "Settings"]

DECLINE_REASON = "card declined (simulated)"
MAX_LATENCY_MS = 60_000


class PaymentProvider(Protocol):
    """Whoever actually moves the money: asked once per attempt that is not settled yet."""

    async def charge(self) -> ProviderOutcome: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The simulation's knobs: `success_rate` 0.0..1.0, `latency_ms` 0..`MAX_LATENCY_MS`."""

    success_rate: float
    latency_ms: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.success_rate <= 1.0:  # also refuses NaN
            raise ValueError(f"success_rate {self.success_rate!r} is not within 0.0..1.0")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms {self.latency_ms!r} is not within 0..{MAX_LATENCY_MS}")


class PaymentSimulator:
    """A `PaymentProvider` that succeeds at random, after a delay."""

    def __init__(self, settings: Settings, *, seed: int | None = None) -> None:
        self._settings = settings
        self._dice = random.Random() if seed is None else random.Random(seed)

    @classmethod
    def from_config(cls, config: Config) -> PaymentSimulator:
        """Starts from PAYMENT_SUCCESS_RATE, PAYMENT_LATENCY_MS and PAYMENT_RANDOM_SEED."""
        latency = min(config.payment_latency_ms, MAX_LATENCY_MS)
        return cls(Settings(config.payment_success_rate, latency), seed=config.payment_random_seed)

    @property
    def settings(self) -> Settings:
        return self._settings

    def change(
        self, *, success_rate: float | None = None, latency_ms: int | None = None
    ) -> Settings:
        """Change some settings (None: keep); applies to every roll from now on."""
        self._settings = Settings(
            self._settings.success_rate if success_rate is None else success_rate,
            self._settings.latency_ms if latency_ms is None else latency_ms,
        )
        return self._settings

    async def charge(self) -> ProviderOutcome:
        latency = self._settings.latency_ms
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        if self._dice.random() < self._settings.success_rate:
            return Approved(uuid.uuid4())
        return Declined(DECLINE_REASON)

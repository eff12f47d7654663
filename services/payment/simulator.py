"""The simulated payment provider: it waits `latency_ms`, then charges with probability
`success_rate`.

`PUT /internal/settings` changes the simulator of the replica that answers it, from that
moment on (a request already waiting out its latency rolls with the new success rate), and
tells the other replicas over Postgres (NOTIFY on `SETTINGS_CHANNEL`), which change theirs.
A replica that starts later starts from the environment again.

With a seed the dice are `random.Random(seed)`, so a process fed the same requests one
after another gives the same outcomes; concurrent requests roll in
whatever order they finish their latency. Payment ids are random UUIDs either way: two
processes started with the same seed must not hand out the same ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import uuid
from collections.abc import Callable
from typing import Protocol

from microshop.config import Config

from .domain import Approved, Declined, ProviderOutcome

__all__ = [
    "DECLINE_REASON",
    "MAX_LATENCY_MS",
    "SETTINGS_CHANNEL",
    "PaymentProvider",
    "PaymentSimulator",
    "Settings",
    "shared_settings",
]

log = logging.getLogger(__name__)

DECLINE_REASON = "card declined (simulated)"
SETTINGS_CHANNEL = "microshop_payment_settings"
MAX_LATENCY_MS = 60_000


class PaymentProvider(Protocol):
    """Whoever actually moves the money: asked once per attempt that is not settled yet."""

    async def charge(self) -> ProviderOutcome: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The simulation's knobs: `success_rate` 0.0..1.0, `latency_ms` 0..`MAX_LATENCY_MS`."""

    success_rate: float
    latency_ms: int

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Settings:
        data = json.loads(raw)
        return cls(float(data["success_rate"]), int(data["latency_ms"]))

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


def shared_settings(simulator: PaymentSimulator) -> Callable[[str | None], None]:
    """A listener of `SETTINGS_CHANNEL` that applies what another replica was told."""

    def heard(payload: str | None) -> None:
        if payload is None:  # (re)connected: nothing to apply
            return
        try:
            settings = Settings.from_json(payload)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring payment settings %r: %s", payload, exc)
            return
        simulator.change(success_rate=settings.success_rate, latency_ms=settings.latency_ms)

    return heard

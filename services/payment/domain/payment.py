"""The payment of one order: its state as a fold of its events, and the decisions on it.

The idempotency key of an attempt is `(order_id, round, attempt)`. The decisions are pure:
`settled` answers a request from the recorded state alone (a replay, or an order that is
already charged) so the caller knows whether it needs the payment provider at all; `decide`
turns the provider's outcome into the events to append. The caller appends them at the
stream version it loaded and, on losing that race, decides again on the new state; the
unique stream version is what makes "charged at most once" hold under concurrency.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TypeAlias, assert_never

from .errors import AttemptMismatch, NotCharged
from .events import (
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentEvent,
    PaymentRefunded,
)

__all__ = [
    "Approved",
    "Attempt",
    "AttemptStatus",
    "Charge",
    "Decision",
    "Declined",
    "Payment",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
    "ProviderOutcome",
    "apply",
    "decide",
    "fold",
    "refund",
    "settled",
]


class AttemptStatus(enum.StrEnum):
    """What became of one recorded attempt."""

    CHARGED = "charged"
    DECLINED = "declined"


class PaymentStatus(enum.StrEnum):
    """The answer to a payment request."""

    CHARGED = "charged"
    DECLINED = "declined"
    ALREADY_CHARGED = "already_charged"


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRequest:
    """Charge `amount` for attempt `attempt` of payment round `round` of an order."""

    order_id: uuid.UUID
    round: int
    attempt: int
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """A recorded attempt; `status` is None only in a stream cut between its two events
    (which the service never writes: an attempt and its outcome are one append)."""

    round: int
    attempt: int
    amount: Decimal
    currency: str
    status: AttemptStatus | None = None
    payment_id: uuid.UUID | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Charge:
    """The one successful attempt of an order."""

    payment_id: uuid.UUID
    round: int
    attempt: int
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Payment:
    """The payment state of an order: its attempts in recording order, its charge if any.

    A refund does not clear the charge: an order is charged at most once, ever.
    """

    order_id: uuid.UUID
    attempts: tuple[Attempt, ...] = ()
    charge: Charge | None = None
    refunded: bool = False

    def attempt(self, round_: int, attempt: int) -> Attempt | None:
        """The recorded attempt with this key, if any."""
        return next((a for a in self.attempts if (a.round, a.attempt) == (round_, attempt)), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Approved:
    """The payment provider charged the card."""

    payment_id: uuid.UUID


@dataclasses.dataclass(frozen=True, slots=True)
class Declined:
    """The payment provider refused the charge."""

    reason: str


ProviderOutcome: TypeAlias = Approved | Declined


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentResult:
    """The answer to a `PaymentRequest` (the request's round and attempt, always)."""

    status: PaymentStatus
    order_id: uuid.UUID
    round: int
    attempt: int
    payment_id: uuid.UUID | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The answer to give and the events to append first (none: nothing new to record)."""

    result: PaymentResult
    events: tuple[PaymentEvent, ...] = ()


# -- the fold ----------------------------------------------------------------------------


def _settle_attempt(
    state: Payment,
    key: tuple[int, int],
    status: AttemptStatus,
    *,
    payment_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> Payment:
    """`state` with the outcome of attempt `key` filled in."""
    for index, attempt in enumerate(state.attempts):
        if (attempt.round, attempt.attempt) == key:
            if attempt.status is not None:
                raise ValueError(f"attempt {key} of order {state.order_id} has two outcomes")
            settled_ = dataclasses.replace(
                attempt, status=status, payment_id=payment_id, reason=reason
            )
            attempts = (*state.attempts[:index], settled_, *state.attempts[index + 1 :])
            return dataclasses.replace(state, attempts=attempts)
    raise ValueError(f"outcome of attempt {key} of order {state.order_id} before its attempt")


def apply(state: Payment | None, event: PaymentEvent) -> Payment:
    """The state after `event`. Outcomes must follow their `PaymentAttempted`."""
    if isinstance(event, PaymentAttempted):
        state = state or Payment(event.order_id)
        if state.attempt(event.round, event.attempt) is not None:
            raise ValueError(f"attempt {(event.round, event.attempt)} is recorded twice")
        attempt = Attempt(event.round, event.attempt, event.amount, event.currency)
        return dataclasses.replace(state, attempts=(*state.attempts, attempt))
    if state is None:
        raise ValueError(f"{type(event).__name__} before any PaymentAttempted")
    if isinstance(event, PaymentCharged):
        state = _settle_attempt(
            state, (event.round, event.attempt), AttemptStatus.CHARGED, payment_id=event.payment_id
        )
        if state.charge is not None:  # cannot happen through `decide`; keep the first
            return state
        charge = Charge(event.payment_id, event.round, event.attempt, event.amount, event.currency)
        return dataclasses.replace(state, charge=charge)
    if isinstance(event, PaymentAttemptFailed):
        return _settle_attempt(
            state, (event.round, event.attempt), AttemptStatus.DECLINED, reason=event.reason
        )
    if isinstance(event, PaymentRefunded):
        return dataclasses.replace(state, refunded=True)
    assert_never(event)


def fold(events: Iterable[PaymentEvent], state: Payment | None = None) -> Payment | None:
    """The state after `events`, starting from `state` (None: no payment events yet)."""
    for event in events:
        state = apply(state, event)
    return state


# -- decisions ---------------------------------------------------------------------------


def settled(state: Payment | None, request: PaymentRequest) -> PaymentResult | None:
    """The answer the recorded state already gives, without asking the provider.

    - the attempt was recorded: its recorded result, whatever happened since (an identical
      request gets an identical answer; `AttemptMismatch` when amount or currency differ);
    - the order was charged by another attempt: `already_charged` with that payment id;
    - else None: the provider has to be asked.
    """
    if state is None:
        return None
    recorded = state.attempt(request.round, request.attempt)
    if recorded is not None and recorded.status is not None:
        if (recorded.amount, recorded.currency) != (request.amount, request.currency):
            raise AttemptMismatch(request.order_id, request.round, request.attempt)
        status = (
            PaymentStatus.CHARGED
            if recorded.status is AttemptStatus.CHARGED
            else PaymentStatus.DECLINED
        )
        return _result(request, status, recorded.payment_id, recorded.reason)
    if state.charge is not None:
        return _result(request, PaymentStatus.ALREADY_CHARGED, state.charge.payment_id)
    return None


def decide(state: Payment | None, request: PaymentRequest, outcome: ProviderOutcome) -> Decision:
    """The answer to `request` given the provider's `outcome`, and what to record.

    What is `settled` wins over the outcome (nothing is recorded, so a charge that lost a
    race to another one is never booked); otherwise the attempt and its outcome.
    """
    answer = settled(state, request)
    if answer is not None:
        return Decision(answer)
    key = (request.order_id, request.round, request.attempt)
    events: tuple[PaymentEvent, ...] = ()
    if state is None or state.attempt(request.round, request.attempt) is None:
        events = (PaymentAttempted(*key, request.amount, request.currency),)
    if isinstance(outcome, Approved):
        charged = PaymentCharged(*key, outcome.payment_id, request.amount, request.currency)
        return Decision(
            _result(request, PaymentStatus.CHARGED, outcome.payment_id), (*events, charged)
        )
    if isinstance(outcome, Declined):
        failed = PaymentAttemptFailed(*key, outcome.reason)
        return Decision(
            _result(request, PaymentStatus.DECLINED, reason=outcome.reason), (*events, failed)
        )
    assert_never(outcome)


def refund(state: Payment | None, payment_id: uuid.UUID, reason: str) -> list[PaymentEvent]:
    """Give the charge `payment_id` back; refunding it again records nothing."""
    if state is None or state.charge is None or state.charge.payment_id != payment_id:
        raise NotCharged(payment_id)
    if state.refunded:
        return []
    return [PaymentRefunded(state.order_id, payment_id, reason)]


def _result(
    request: PaymentRequest,
    status: PaymentStatus,
    payment_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> PaymentResult:
    return PaymentResult(
        status, request.order_id, request.round, request.attempt, payment_id, reason
    )

"""The payment events (past tense, immutable). `services.payment.events` registers them.

A payment attempt is recorded as two events appended together: `PaymentAttempted` and its
outcome, `PaymentCharged` or `PaymentAttemptFailed`. There is never an attempt without an
outcome in a stream, so a reader needs no "pending" state. `PaymentRefunded` compensates a
charge whose order was cancelled while the payment ran.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import TypeAlias

__all__ = [
    "PaymentAttemptFailed",
    "PaymentAttempted",
    "PaymentCharged",
    "PaymentEvent",
    "PaymentRefunded",
]


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentAttempted:
    """Attempt `attempt` of payment round `round` of an order asked for `amount`."""

    order_id: uuid.UUID
    round: int
    attempt: int
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentCharged:
    """The attempt succeeded: the order is charged (at most once per order, ever)."""

    order_id: uuid.UUID
    round: int
    attempt: int
    payment_id: uuid.UUID
    amount: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentAttemptFailed:
    """The attempt was declined; a later attempt may still succeed."""

    order_id: uuid.UUID
    round: int
    attempt: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRefunded:
    """The charge `payment_id` was given back (its order was cancelled meanwhile)."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    reason: str


PaymentEvent: TypeAlias = PaymentAttempted | PaymentCharged | PaymentAttemptFailed | PaymentRefunded

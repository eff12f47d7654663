"""The payment rules, free of I/O: events, an order's payment as a fold, decisions.

Nothing here imports aiohttp, asyncpg, aiormq or marshmallow, and nothing here rolls dice:
the provider's outcome comes in as a value (`Approved` / `Declined`).
"""

from . import rules
from .errors import AttemptMismatch, DomainError, InvalidValue, NotCharged
from .events import (
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentEvent,
    PaymentRefunded,
)
from .payment import (
    Approved,
    Attempt,
    AttemptStatus,
    Charge,
    Decision,
    Declined,
    Payment,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    ProviderOutcome,
    apply,
    decide,
    fold,
    refund,
    settled,
)

__all__ = [
    "Approved",
    "Attempt",
    "AttemptMismatch",
    "AttemptStatus",
    "Charge",
    "Decision",
    "Declined",
    "DomainError",
    "InvalidValue",
    "NotCharged",
    "Payment",
    "PaymentAttemptFailed",
    "PaymentAttempted",
    "PaymentCharged",
    "PaymentEvent",
    "PaymentRefunded",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
    "ProviderOutcome",
    "apply",
    "decide",
    "fold",
    "refund",
    "rules",
    "settled",
]

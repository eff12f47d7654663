"""Why a payment decision is refused.

Each is a `DomainError` of the payment rules, a `microshop.domain.DomainError` that the
kernel answers by kind and code (409 `idempotency_conflict` for a reused attempt key). A
value breaking a rule is the kernel's `InvalidValue` (422, details `{field: [message]}`).
"""

from __future__ import annotations

import uuid

from microshop import domain as kernel
from microshop.domain import InvalidValue, Kind

__all__ = ["AttemptMismatch", "DomainError", "InvalidValue", "NotCharged"]


class DomainError(kernel.DomainError):
    """A decision the payment rules refuse (409 `rejected` unless a subclass says otherwise)."""

    kind, code = Kind.CONFLICT, "rejected"


class AttemptMismatch(DomainError):
    """An attempt's idempotency key `(order_id, round, attempt)` came back with another
    amount or currency than it was recorded with: a caller bug, never silently replayed."""

    code = "idempotency_conflict"

    def __init__(self, order_id: uuid.UUID, round_: int, attempt: int) -> None:
        super().__init__(
            f"attempt {attempt} of round {round_} of order {order_id} was recorded "
            "with another amount or currency"
        )
        self.order_id = order_id
        self.round = round_
        self.attempt = attempt


class NotCharged(DomainError):
    """A refund names a charge the order does not have."""

    code = "not_charged"

    def __init__(self, payment_id: uuid.UUID) -> None:
        super().__init__(f"the order has no charge {payment_id}")
        self.payment_id = payment_id

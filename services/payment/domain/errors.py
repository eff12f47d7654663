"""Why a payment decision is refused (answered by the kernel by kind: 409, 422)."""

from __future__ import annotations

import uuid

from microshop.domain import ConflictError, DomainError, InvalidValue

__all__ = ["AttemptMismatch", "DomainError", "InvalidValue", "NotCharged"]


class AttemptMismatch(ConflictError):
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


class NotCharged(ConflictError):
    """A refund names a charge the order does not have."""

    code = "not_charged"

    def __init__(self, payment_id: uuid.UUID) -> None:
        super().__init__(f"the order has no charge {payment_id}")
        self.payment_id = payment_id

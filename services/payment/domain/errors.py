"""Why a payment decision is refused."""

from __future__ import annotations

import uuid

__all__ = ["AttemptMismatch", "DomainError", "InvalidValue", "NotCharged"]


class DomainError(Exception):
    """Base class of every refusal of the payment rules."""


class InvalidValue(DomainError):
    """A field's value breaks a payment rule (a negative amount, three decimals)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class AttemptMismatch(DomainError):
    """An attempt's idempotency key `(order_id, round, attempt)` came back with another
    amount or currency than it was recorded with: a caller bug, never silently replayed."""

    def __init__(self, order_id: uuid.UUID, round_: int, attempt: int) -> None:
        self.order_id = order_id
        self.round = round_
        self.attempt = attempt
        super().__init__(
            f"attempt {attempt} of round {round_} of order {order_id} was recorded "
            "with another amount or currency"
        )


class NotCharged(DomainError):
    """A refund names a charge the order does not have."""

    def __init__(self, payment_id: uuid.UUID) -> None:
        self.payment_id = payment_id
        super().__init__(f"the order has no charge {payment_id}")

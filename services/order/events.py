"""order-service's events in the shared registry, and its stream ids."""

from __future__ import annotations

from eventstore import registry

from .domain import (
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentRetryRequested,
    PaymentSucceeded,
)

for _event in (OrderPlaced, PaymentSucceeded, PaymentFailed, PaymentRetryRequested,
               OrderCancelled):  # fmt: skip
    registry.register(_event)


def stream_id(order_id: str) -> str:
    return f"order-{order_id}"


def payment_stream_id(order_id: str) -> str:
    return f"payment-{order_id}"

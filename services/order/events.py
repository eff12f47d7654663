"""order-service's events in the shared registry, and the streams it writes and reads."""

from __future__ import annotations

from eventstore import Category, registry

from .domain import (
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentRetryRequested,
    PaymentSucceeded,
)

ORDER_STREAMS = Category("order")
"""`order-{order_id}`: one stream per order."""
PAYMENT_STREAMS = Category("payment")
"""payment-service's `payment-{order_id}` streams, read for an order's timeline (their name
is part of payment-service's published contract, like its events)."""

registry.register_all(
    OrderPlaced, PaymentSucceeded, PaymentFailed, PaymentRetryRequested, OrderCancelled
)

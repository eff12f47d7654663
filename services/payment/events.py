"""The payment streams and events in the shared registry (under their class names).

Import this module (the app does) before reading payment streams.
"""

from __future__ import annotations

from eventstore import Category, registry

from .domain.events import (
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentEvent,
    PaymentRefunded,
)

__all__ = ["PAYMENT_EVENTS", "PAYMENT_STREAMS", "PaymentEvent"]

PAYMENT_STREAMS = Category("payment")
"""`payment-{order_id}`: the payment stream of one order (part of the published contract:
order-service reads it for an order's timeline)."""

PAYMENT_EVENTS = (PaymentAttempted, PaymentCharged, PaymentAttemptFailed, PaymentRefunded)

registry.register_all(*PAYMENT_EVENTS)

"""Registers the payment events with the event store under their contract names (DESIGN §4).

Import this module (the app does) before reading payment streams.
"""

from __future__ import annotations

import uuid

from eventstore import registry

from .domain.events import (
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentEvent,
    PaymentRefunded,
)

__all__ = ["CATEGORY", "PAYMENT_EVENTS", "PaymentEvent", "stream_id"]

CATEGORY = "payment"

PAYMENT_EVENTS = (PaymentAttempted, PaymentCharged, PaymentAttemptFailed, PaymentRefunded)

for _cls in PAYMENT_EVENTS:
    registry.register(_cls, name=_cls.__name__, version=1)


def stream_id(order_id: uuid.UUID) -> str:
    """`payment-{order_id}`: the payment stream of one order."""
    return f"{CATEGORY}-{order_id}"

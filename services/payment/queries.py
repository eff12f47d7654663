"""The read side: an order's payment history, straight from its stream (a handful of
events per order, so no read model is needed to list them)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from eventstore import EventStore

from . import domain
from .domain import Payment, PaymentAttempted
from .events import PAYMENT_STREAMS

__all__ = ["History", "payment_history"]


@dataclasses.dataclass(frozen=True, slots=True)
class History:
    """An order's payment state and when each attempt `(round, attempt)` was recorded."""

    payment: Payment
    recorded_at: dict[tuple[int, int], datetime]


async def payment_history(store: EventStore, order_id: uuid.UUID) -> History | None:
    """None when the order has no payment events."""
    recorded = await store.read_stream(PAYMENT_STREAMS.stream(order_id))
    state = domain.fold(e.data for e in recorded)
    if state is None:
        return None
    recorded_at = {
        (e.data.round, e.data.attempt): e.recorded_at
        for e in recorded
        if isinstance(e.data, PaymentAttempted)
    }
    return History(state, recorded_at)

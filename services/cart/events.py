"""Registers the cart's domain events with the event store under their class names."""

from __future__ import annotations

from eventstore import registry

from .domain import (
    CartCheckedOut,
    CartCleared,
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
)

__all__ = ["EVENT_TYPES"]

EVENT_TYPES = (
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
    CartCleared,
    CartCheckedOut,
)

for _cls in EVENT_TYPES:
    registry.register(_cls)

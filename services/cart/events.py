"""The cart's streams and its events in the shared registry (under their class names)."""

from __future__ import annotations

from eventstore import Category, registry

from .domain import (
    CartCheckedOut,
    CartCleared,
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
)
from .domain.events import upcast_item_added_v1

__all__ = ["CART_STREAMS", "EVENT_TYPES"]

CART_STREAMS = Category("cart")
"""`cart-{user_id}`: one stream per user, the cart of that user."""

EVENT_TYPES = (
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
    CartCleared,
    CartCheckedOut,
)

registry.register_all(*EVENT_TYPES)
registry.upcaster("CartItemAdded", from_version=1)(upcast_item_added_v1)

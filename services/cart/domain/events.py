"""What happens to a cart, in the past tense. Stored as JSON (decimals as strings)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "CartCheckedOut",
    "CartCleared",
    "CartEvent",
    "CartItemAdded",
    "CartItemQuantityChanged",
    "CartItemRemoved",
    "upcast_item_added_v1",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CartItemAdded:
    """`quantity` more of a product went into the cart at the catalog's price of that moment.

    Adds to an existing line; the line then shows this (latest) name, unit price and SKU.

    Version 2 records the product's `sku` too (version 1 did not: `upcast_item_added_v1`
    reads those as `sku: None`, "not recorded").
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    product_id: str
    name: str
    unit_price: Decimal
    currency: str
    quantity: int
    sku: str | None = None


def upcast_item_added_v1(data: dict[str, Any]) -> dict[str, Any]:
    """`CartItemAdded` v1 → v2: the SKU was not recorded then."""
    return {**data, "sku": None}


@dataclasses.dataclass(frozen=True, slots=True)
class CartItemQuantityChanged:
    """A line's quantity was set to `quantity` (1..99)."""

    product_id: str
    quantity: int


@dataclasses.dataclass(frozen=True, slots=True)
class CartItemRemoved:
    """A line left the cart."""

    product_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class CartCleared:
    """Every line left the cart."""


@dataclasses.dataclass(frozen=True, slots=True)
class CartCheckedOut:
    """Order `order_id` took `lines` — `(product_id, quantity)` pairs — out of the cart.

    Exactly those quantities leave the cart; whatever was added after the order stays.
    """

    order_id: str
    lines: tuple[tuple[str, int], ...]


CartEvent: TypeAlias = (
    CartItemAdded | CartItemQuantityChanged | CartItemRemoved | CartCleared | CartCheckedOut
)

"""The products a cart may take: what the cart's own catalog says now.

`POST /api/cart/items` takes a product at the price the catalog asks for it at that
moment. The cart reads it from its `cart_catalog` read model (`catalog.current_entries`:
exact even while the read model lags, since a row behind its stream is folded from the
log), so adding to a cart needs no call to product-service, and works while it is down.
A product the catalog does not know, or no longer sells, is the cart's refusal
(`UnknownProduct`, 422). Ids are product-service's UUIDs in their canonical spelling.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from eventstore import PostgresEventStore

from .catalog import current_entries
from .domain import UnknownProduct
from .domain.pricing import CatalogEntry
from .schemas import Product

__all__ = ["CatalogProducts", "Products"]


class Products(Protocol):
    """Where a cart line's product comes from (a fake in tests, the catalog in the app)."""

    async def sold(self, product_id: str) -> Product: ...


class CatalogProducts:
    """Products as the cart's catalog read model has them now."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self.entries: dict[str, CatalogEntry] = {}
        """The entries read so far (by canonical id), for pricing the cart after a write
        without reading them again."""

    async def sold(self, product_id: str) -> Product:
        """The active product `product_id` (its `id` is the canonical spelling of it)."""
        try:
            canonical = str(uuid.UUID(product_id))
        except ValueError:
            raise UnknownProduct(product_id) from None
        entry = (await current_entries(self._store, [canonical])).get(canonical)
        if entry is not None:
            self.entries[canonical] = entry
        if entry is None or not entry.active:
            raise UnknownProduct(product_id)
        return Product(
            entry.product_id, entry.name, entry.price, entry.currency, entry.active, entry.sku
        )

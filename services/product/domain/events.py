"""The product events (past tense, immutable). `services.product.events` registers them.

`ProductUpdated` carries the full set of descriptive fields *after* the change (name,
description, image_url), not just the changed ones: a reader never has to merge, and
`image_url=None` can mean "back to the generated image" without a sentinel. It is recorded
only when at least one of them changed. Prices change only through `ProductPriceChanged`.
"""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import TypeAlias

__all__ = [
    "ProductCreated",
    "ProductDiscontinued",
    "ProductEvent",
    "ProductPriceChanged",
    "ProductUpdated",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ProductCreated:
    """A product entered the catalog. `image_url=None`: the service's generated image."""

    product_id: uuid.UUID
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    image_url: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ProductUpdated:
    """The descriptive fields changed; all three are the values after the change."""

    product_id: uuid.UUID
    name: str
    description: str
    image_url: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ProductPriceChanged:
    product_id: uuid.UUID
    old_price: Decimal
    new_price: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class ProductDiscontinued:
    """The product left the catalog: no longer listed or changeable, still readable by id."""

    product_id: uuid.UUID


ProductEvent: TypeAlias = (
    ProductCreated | ProductUpdated | ProductPriceChanged | ProductDiscontinued
)

"""Registers the product events with the event store under their contract names (DESIGN §4).

Import this module (the app, the projection and the CLI do) before reading product streams.
"""

from __future__ import annotations

import uuid

from eventstore import registry

from .domain.events import (
    ProductCreated,
    ProductDiscontinued,
    ProductEvent,
    ProductPriceChanged,
    ProductUpdated,
)

__all__ = ["CATEGORY", "PRODUCT_EVENTS", "ProductEvent", "stream_id"]

CATEGORY = "product"

PRODUCT_EVENTS = (ProductCreated, ProductUpdated, ProductPriceChanged, ProductDiscontinued)

for _cls in PRODUCT_EVENTS:
    registry.register(_cls, name=_cls.__name__, version=1)


def stream_id(product_id: uuid.UUID) -> str:
    """`product-{uuid}`: the stream of one product."""
    return f"{CATEGORY}-{product_id}"

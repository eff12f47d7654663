"""The catalog's streams and its events in the shared registry (under their class names).

Import this module (the app, the projection and the CLI do) before reading product streams.
"""

from __future__ import annotations

from eventstore import Category, registry

from .domain.events import (
    ProductCreated,
    ProductDiscontinued,
    ProductEvent,
    ProductPriceChanged,
    ProductUpdated,
)

__all__ = ["PRODUCT_EVENTS", "PRODUCT_STREAMS", "ProductEvent"]

PRODUCT_STREAMS = Category("product")
"""`product-{uuid}`: one stream per product."""

PRODUCT_EVENTS = (ProductCreated, ProductUpdated, ProductPriceChanged, ProductDiscontinued)

registry.register_all(*PRODUCT_EVENTS)

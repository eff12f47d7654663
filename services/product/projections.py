"""The `products` read model: one row per product, folded with the aggregate's own `apply`,
so the catalog a client reads and the state a decision sees can never disagree."""

from __future__ import annotations

import logging
import uuid

from eventstore import Projection, RecordedEvent, Row, register_projection

from .domain import Product, ProductCreated
from .domain import apply as apply_event
from .events import PRODUCT_EVENTS, PRODUCT_STREAMS
from .images import default_image_url

__all__ = ["PRODUCTS", "ProductsProjection", "product_from_row"]

log = logging.getLogger(__name__)


def product_from_row(row: Row) -> Product:
    """The product a `products` row shows (its `image_url` is already resolved)."""
    return Product(
        product_id=row["id"],
        sku=row["sku"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        currency=row["currency"],
        image_url=row["image_url"],
        active=row["active"],
    )


class ProductsProjection(Projection):
    """Table `products`: the catalog as clients see it, plus timestamps and stream version."""

    name = "products"
    table = "products"
    key = "id"
    categories = frozenset({PRODUCT_STREAMS.name})
    keyed_by_stream = True
    reads_metadata = False
    columns = (
        "id",
        "sku",
        "name",
        "description",
        "price",
        "currency",
        "image_url",
        "active",
        "created_at",
        "updated_at",
        "version",
    )

    def key_of(self, event: RecordedEvent) -> uuid.UUID | None:
        if not PRODUCT_STREAMS.owns(event) or not isinstance(event.data, PRODUCT_EVENTS):
            return None  # another category, or a type this process does not know
        return event.data.product_id

    def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
        data = event.data
        if row is None and not isinstance(data, ProductCreated):
            log.warning("%s: %s before ProductCreated; skipped", event.stream_id, event.event_type)
            return None
        try:
            product = apply_event(None if row is None else product_from_row(row), data)
        except ValueError as exc:  # a broken stream must not stop the whole read model
            log.warning("%s v%d: %s; skipped", event.stream_id, event.stream_version, exc)
            return row
        return {
            "id": product.product_id,
            "sku": product.sku,
            "name": product.name,
            "description": product.description,
            "price": product.price,
            "currency": product.currency,
            "image_url": product.image_url or default_image_url(product.product_id),
            "active": product.active,
            "created_at": event.recorded_at if row is None else row["created_at"],
            "updated_at": event.recorded_at,
            "version": event.stream_version,
        }


PRODUCTS = ProductsProjection()
register_projection(PRODUCTS)

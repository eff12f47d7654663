"""The `cart_catalog` read model: the catalog as carts price it, folded from product events.

Table `cart_catalog` (migrations/0012): one row per product of the log (`product_id`, the
id of its `product-{id}` stream), with `sku`, `name`, `price`, `currency`, `active` and
`version`, the stream version of the last event folded. It is cart-service's own copy of
what it needs of product-service's events (`schemas.CATALOG_FACTS`, the versions
`topology.LOG_READERS` says it accepts), kept by a runner like any projection, rebuilt,
verified and shown by `microshop projections ...`.

Exact, without waiting: `current_entries` reads the rows of a cart's products together
with the version each product's stream has now (the `(stream_id, stream_version)` index,
one query). A row behind its stream (an event the runner has not folded yet) is folded
from the log instead, by the same fold. So a cart is priced as the catalog stands at that
moment, whatever the runner's lag, for one indexed lookup per cart read.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from decimal import Decimal

import marshmallow
import msgspec

from eventstore import (
    Category,
    PostgresEventStore,
    Projection,
    RecordedEvent,
    Row,
    register_projection,
)
from eventstore.store import COLUMNS
from microshop.topology import LOG_READERS

from .domain.pricing import CatalogEntry, apply_fact
from .schemas import CATALOG_FACTS

__all__ = ["CATALOG", "CatalogProjection", "current_entries"]

log = logging.getLogger(__name__)

PRODUCT_STREAMS = Category("product")
"""product-service's streams, `product-{uuid}`: the catalog this read model follows."""

ACCEPTS = LOG_READERS["cart_catalog"].accepts


def entry_of(row: Row | None) -> CatalogEntry | None:
    if row is None or row.get("name") is None:
        return None
    return CatalogEntry(
        row["product_id"],
        row["sku"],
        row["name"],
        Decimal(row["price"]),
        row["currency"],
        row["active"],
    )


class CatalogProjection(Projection):
    """Every product's current name, SKU, price and availability, keyed by product id."""

    name = "cart_catalog"
    table = "cart_catalog"
    key = "product_id"
    categories = frozenset({PRODUCT_STREAMS.name})
    keyed_by_stream = True
    reads_metadata = False
    columns = ("product_id", "sku", "name", "price", "currency", "active", "version")

    def key_of(self, event: RecordedEvent) -> str | None:
        return PRODUCT_STREAMS.id_of(event.stream_id) if PRODUCT_STREAMS.owns(event) else None

    def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
        """Fold one product event. Every event of the stream moves `version` (types the cart
        does not read too), so a row is current exactly when its version is the stream's.
        A type it reads at a version it does not accept, or data that does not fit, raises:
        the runner parks the event."""
        entry = entry_of(row)
        schema = CATALOG_FACTS.get(event.event_type)
        if schema is not None:
            if event.schema_version not in ACCEPTS[event.event_type]:
                raise ValueError(
                    f"{event.event_type} v{event.schema_version} is not a version the cart "
                    f"reads ({sorted(ACCEPTS[event.event_type])})"
                )
            try:
                fact = schema.load(msgspec.to_builtins(event.data))
            except (marshmallow.ValidationError, TypeError) as exc:
                raise ValueError(
                    f"{event.event_type} does not fit the cart's reading: {exc}"
                ) from exc
            entry = apply_fact(entry, fact)
        if entry is None:
            return None  # nothing known yet (a stream that does not start with a listing)
        return {
            "product_id": entry.product_id,
            "sku": entry.sku,
            "name": entry.name,
            "price": entry.price,
            "currency": entry.currency,
            "active": entry.active,
            "version": event.stream_version,
        }


CATALOG = register_projection(CatalogProjection())

# The rows of some products, with the version of each one's stream now (NULL: no stream).
_CURRENT = """
SELECT p.id AS product_id, c.sku, c.name, c.price, c.currency, c.active, c.version,
       (SELECT max(e.stream_version) FROM events e WHERE e.stream_id = 'product-' || p.id) AS head
FROM unnest($1::text[]) AS p(id) LEFT JOIN cart_catalog c ON c.product_id = p.id"""

_STREAMS = (
    f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version"
)


async def current_entries(
    store: PostgresEventStore, product_ids: Collection[str]
) -> dict[str, CatalogEntry]:
    """The catalog entries of `product_ids` as their streams stand now (a product with no
    stream, or none the cart can read, has no entry)."""
    if not product_ids:
        return {}
    rows = await store.pool.fetch(_CURRENT, list(product_ids))
    entries: dict[str, CatalogEntry] = {}
    behind: dict[str, Row] = {}
    for record in rows:
        row = dict(record)
        if row["head"] is None:
            continue  # no such product
        if row["version"] is not None and row["version"] >= row["head"]:
            if (entry := entry_of(row)) is not None:
                entries[row["product_id"]] = entry
        else:
            behind[row["product_id"]] = row
    if behind:
        entries.update(await _from_log(store, behind))
    return entries


async def _from_log(store: PostgresEventStore, behind: dict[str, Row]) -> dict[str, CatalogEntry]:
    """The entries of products whose rows lag their streams, folded from the log."""
    streams = [PRODUCT_STREAMS.stream(product_id) for product_id in behind]
    events = store.decode_rows(await store.pool.fetch(_STREAMS, streams), lenient=True)
    by_stream: dict[str, list[RecordedEvent]] = {}
    for event in events:
        by_stream.setdefault(event.stream_id, []).append(event)
    entries = {}
    for product_id, row in behind.items():
        try:
            folded = CATALOG.fold_stream(by_stream.get(PRODUCT_STREAMS.stream(product_id), []))
            entry = entry_of(folded.get(product_id))
        except Exception as exc:  # an event the runner parks too: the row is what we know
            log.warning("cart_catalog: %s does not fold (%s); using its row", product_id, exc)
            entry = entry_of(row)
        if entry is not None:
            entries[product_id] = entry
    return entries

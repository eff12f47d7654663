"""The write side: load a product's stream, let the domain decide, append what it decided.

These functions are the one code path for changing the catalog (the HTTP views and the
seeder both use them). SKU uniqueness is enforced by `product_skus`, written in the same
transaction as the `ProductCreated` append: either both land or neither does.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from eventstore import (
    Aggregate,
    EventStore,
    Executed,
    Metadata,
    Position,
)
from eventstore.pg import Pool

from . import domain
from .domain import NewProduct, Product, ProductChanges, ProductEvent
from .events import PRODUCT_STREAMS

__all__ = [
    "ATTEMPTS",
    "PRODUCT",
    "Outcome",
    "change_product",
    "create_product",
    "discontinue_product",
]

PRODUCT = Aggregate(PRODUCT_STREAMS, domain.fold, None)
"""A product's stream folded into its state (None: no such product)."""
ATTEMPTS = PRODUCT.retry.attempts
"""How often a change is decided again after losing a race for the stream version."""

_CLAIM_SKU = """
INSERT INTO product_skus (sku, product_id) VALUES ($1, $2)
ON CONFLICT (sku) DO NOTHING
RETURNING true"""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The product after a command, and the log position of what was appended (None: the
    command changed nothing, so there is nothing for the read model to wait for)."""

    product: Product
    position: Position | None


async def create_product(
    store: EventStore,
    pool: Pool,
    new: NewProduct,
    *,
    product_id: uuid.UUID | None = None,
    metadata: Metadata | None = None,
) -> Outcome:
    """Add a product: `SkuTaken` when another product has the SKU, `InvalidValue` for
    values breaking the rules, `ProductAlreadyExists` when `product_id` is in use."""
    product_id = product_id or uuid.uuid4()
    checked = domain.fold(domain.create(None, product_id, new))
    assert checked is not None  # the rules passed; claim the normalised SKU
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_CLAIM_SKU, checked.sku, product_id):
            raise domain.SkuTaken(checked.sku)
        done = await PRODUCT.execute(
            store,
            product_id,
            lambda state: domain.create(state, product_id, new),
            metadata=metadata,
            conn=conn,
        )
    assert done.state is not None
    return Outcome(done.state, done.position)


async def _decide(
    store: EventStore,
    product_id: uuid.UUID,
    decide: Callable[[Product | None], list[ProductEvent]],
    metadata: Metadata | None,
) -> Outcome:
    """`decide` on the product's current state through `PRODUCT.execute` (a lost race is
    decided again on the new state, which may now refuse)."""

    def on_existing(state: Product | None) -> list[ProductEvent]:
        if state is None:
            raise domain.ProductNotFound(product_id)
        return decide(state)

    done: Executed[Product | None] = await PRODUCT.execute(
        store, product_id, on_existing, metadata=metadata
    )
    assert done.state is not None  # on_existing refused a missing product
    return Outcome(done.state, done.position)


async def change_product(
    store: EventStore,
    product_id: uuid.UUID,
    changes: ProductChanges,
    *,
    metadata: Metadata | None = None,
) -> Outcome:
    """Apply a partial change (`ProductUpdated` and/or `ProductPriceChanged`)."""
    return await _decide(store, product_id, lambda s: domain.revise(s, changes), metadata)


async def discontinue_product(
    store: EventStore, product_id: uuid.UUID, *, metadata: Metadata | None = None
) -> Outcome:
    """Discontinue a product (no new event when it already is)."""
    return await _decide(store, product_id, domain.discontinue, metadata)

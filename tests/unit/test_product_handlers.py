"""The catalog's write path on the in-memory store: revise and discontinue products."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from eventstore import NO_STREAM, InMemoryEventStore
from services.product import domain
from services.product import events as _product_events  # noqa: F401  (registers the types)
from services.product.domain import NewProduct, ProductChanges
from services.product.handlers import PRODUCT, change_product, discontinue_product
from tests.samples import RacingStore


async def created(store: InMemoryEventStore, price: str = "9.99") -> uuid.UUID:
    product_id = uuid.uuid4()
    events = domain.create(None, product_id, NewProduct("SKU-1", "Mug", Decimal(price)))
    await store.append(PRODUCT.stream(product_id), events, NO_STREAM)
    return product_id


async def test_a_change_is_recorded_and_a_repeated_one_is_not() -> None:
    store = InMemoryEventStore()
    product_id = await created(store)
    changed = await change_product(store, product_id, ProductChanges(price=Decimal("12.50")))
    assert changed.product.price == Decimal("12.50") and changed.position is not None
    again = await change_product(store, product_id, ProductChanges(price=Decimal("12.50")))
    assert again.position is None  # nothing changed: no event, nothing to wait for
    renamed = await change_product(store, product_id, ProductChanges(name="  Big mug "))
    assert renamed.product.name == "Big mug"
    types = [e.event_type for e in await store.read_stream(PRODUCT.stream(product_id))]
    assert types == ["ProductCreated", "ProductPriceChanged", "ProductUpdated"]


async def test_refusals_write_nothing() -> None:
    store = InMemoryEventStore()
    product_id = await created(store)
    with pytest.raises(domain.InvalidValue) as bad:
        await change_product(store, product_id, ProductChanges(price=Decimal("1.999")))
    assert bad.value.details == {"price": ["must have at most 2 decimal places"]}
    missing = uuid.uuid4()
    with pytest.raises(domain.ProductNotFound) as unknown:
        await discontinue_product(store, missing)
    assert unknown.value.message == f"no product {missing}"
    assert await store.stream_version(PRODUCT.stream(product_id)) == 1


async def test_a_discontinued_product_no_longer_changes() -> None:
    store = InMemoryEventStore()
    product_id = await created(store)
    first = await discontinue_product(store, product_id)
    assert not first.product.active and first.position is not None
    assert (await discontinue_product(store, product_id)).position is None
    with pytest.raises(domain.ProductIsDiscontinued) as refused:
        await change_product(store, product_id, ProductChanges(name="Other"))
    assert refused.value.code == "product_discontinued"


async def test_concurrent_price_changes_form_one_chain() -> None:
    """The losers of each race are decided again on the winner's state: old prices chain
    up, and every change lands (fewer rivals than the aggregate's attempts)."""
    store = RacingStore()
    product_id = await created(store, "0.50")
    prices = [Decimal(f"{n}.00") for n in range(1, 8)]
    outcomes = await asyncio.gather(
        *(change_product(store, product_id, ProductChanges(price=p)) for p in prices)
    )
    assert store.lost > 0  # the changes really raced
    assert all(o.position is not None for o in outcomes)
    changes = [e.data for e in await store.read_stream(PRODUCT.stream(product_id))][1:]
    assert sorted(c.new_price for c in changes) == prices
    current = Decimal("0.50")
    for change in changes:
        assert change.old_price == current
        current = change.new_price


async def test_a_change_that_lost_to_a_discontinuation_is_refused() -> None:
    """Decided again after losing the race, a change sees the product discontinued."""
    store = RacingStore()
    product_id = await created(store)
    done, refused = await asyncio.gather(
        discontinue_product(store, product_id),
        change_product(store, product_id, ProductChanges(name="Renamed")),
        return_exceptions=True,
    )
    assert not isinstance(done, BaseException) and not done.product.active
    assert isinstance(refused, domain.ProductIsDiscontinued) and store.lost == 1
    types = [e.event_type for e in await store.read_stream(PRODUCT.stream(product_id))]
    assert types == ["ProductCreated", "ProductDiscontinued"]

"""The cart's write path on the in-memory store: given events, when a change, then events."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from eventstore import InMemoryEventStore, Metadata
from services.cart import domain
from services.cart import events as _cart_events  # noqa: F401  (registers the types)
from services.cart.domain import Cart, CartCheckedOut, CartItemAdded, CartItemRemoved
from services.cart.handlers import CART, change_cart

META = Metadata(actor="user-1", service="cart")


def add(product_id: str, quantity: int, price: str = "2.50") -> Any:
    return lambda cart: domain.add_item(
        cart,
        product_id=product_id,
        name=product_id.title(),
        unit_price=Decimal(price),
        currency="EUR",
        quantity=quantity,
    )


async def events_of(store: InMemoryEventStore, user_id: str) -> list[object]:
    return [e.data for e in await store.read_stream(CART.stream(user_id))]


async def test_adding_changing_and_removing_lines() -> None:
    store = InMemoryEventStore()
    added = await change_cart(store, "u1", add("mug", 2), metadata=META)
    assert added.state.total == Decimal("5.00") and added.version == 1
    more = await change_cart(store, "u1", add("mug", 1, "3.00"), metadata=META)
    assert more.state.line("mug") == domain.Line("mug", "Mug", Decimal("3.00"), 3)
    changed = await change_cart(
        store, "u1", lambda c: domain.change_quantity(c, "mug", 5), metadata=META
    )
    assert changed.state.total == Decimal("15.00")
    same = await change_cart(
        store, "u1", lambda c: domain.change_quantity(c, "mug", 5), metadata=META
    )
    assert same.position is None  # nothing changed: nothing appended, nothing to wait for
    gone = await change_cart(store, "u1", lambda c: domain.remove_item(c, "mug"), metadata=META)
    assert gone.state.is_empty and gone.state.currency is None
    assert [type(e) for e in await events_of(store, "u1")] == [
        CartItemAdded,
        CartItemAdded,
        domain.CartItemQuantityChanged,
        CartItemRemoved,
    ]
    recorded = await store.read_stream(CART.stream("u1"))
    assert {e.metadata for e in recorded} == {META}


async def test_a_refusal_writes_nothing() -> None:
    store = InMemoryEventStore()
    await change_cart(store, "u1", add("mug", 98), metadata=META)
    with pytest.raises(domain.QuantityOutOfRange) as too_many:
        await change_cart(store, "u1", add("mug", 2), metadata=META)
    assert too_many.value.details == {"product_id": "mug", "quantity": 100, "maximum": 99}
    with pytest.raises(domain.ItemNotInCart):
        await change_cart(store, "u1", lambda c: domain.remove_item(c, "tea"), metadata=META)
    with pytest.raises(domain.CurrencyMismatch):
        await change_cart(
            store,
            "u1",
            lambda c: domain.add_item(
                c, product_id="tea", name="Tea", unit_price=Decimal(1), currency="USD", quantity=1
            ),
            metadata=META,
        )
    assert len(await events_of(store, "u1")) == 1


async def test_concurrent_writers_to_one_cart_all_land() -> None:
    store = InMemoryEventStore()
    writes = [change_cart(store, "u1", add(f"p{i}", 1), metadata=META) for i in range(12)]
    await asyncio.gather(*writes)
    cart = (await CART.load(store, "u1")).state
    assert sorted(line.product_id for line in cart.lines) == sorted(f"p{i}" for i in range(12))
    assert cart.version == 12


async def test_a_snapshot_is_folded_on_like_the_stream_itself() -> None:
    store = InMemoryEventStore()
    for i in range(5):
        await change_cart(store, "u1", add(f"p{i}", 1), metadata=META)
    snapshot_state = (await CART.load(store, "u1")).state

    async def snapshot(conn: object) -> tuple[Cart, int]:
        return snapshot_state, snapshot_state.version

    done = await change_cart(store, "u1", add("p5", 2), metadata=META, snapshot=snapshot)
    full = await CART.load(store, "u1")
    assert done.state == full.state
    assert [e.stream_version for e in done.before.recorded] == []  # only the tail was read


async def test_checking_out_takes_what_the_order_took() -> None:
    store = InMemoryEventStore()
    await change_cart(store, "u1", add("mug", 3), metadata=META)
    await change_cart(store, "u1", add("tea", 1), metadata=META)
    done = await CART.execute(
        store, "u1", lambda cart: domain.check_out(cart, "order-1", [("mug", 2), ("tea", 1)])
    )
    assert done.events == (CartCheckedOut("order-1", (("mug", 2), ("tea", 1))),)
    assert [(line.product_id, line.quantity) for line in done.state.lines] == [("mug", 1)]

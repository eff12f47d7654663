"""The cart's write path on the in-memory store: given events, when a change, then events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from eventstore import DuplicateEventError, InMemoryEventStore, Metadata, RecordedEvent, Reject
from services.cart import domain
from services.cart import events as _cart_events  # noqa: F401  (registers the types)
from services.cart.domain import Cart, CartCheckedOut, CartItemAdded, CartItemRemoved
from services.cart.handlers import (
    CART,
    add_to_cart,
    change_cart,
    check_out_order,
    checkout_event_id,
    checkout_metadata,
    placed_order,
)
from services.cart.schemas import PlacedOrder, Product
from tests.samples import RacingStore

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
    store = RacingStore()
    writes = [change_cart(store, "u1", add(f"p{i}", 1), metadata=META) for i in range(5)]
    await asyncio.gather(*writes)
    assert store.lost  # they did lose races, and decided again
    cart = (await CART.load(store, "u1")).state
    assert sorted(line.product_id for line in cart.lines) == [f"p{i}" for i in range(5)]
    assert cart.version == 5


async def test_a_lost_race_is_decided_again_on_the_new_state() -> None:
    store = RacingStore()
    first, second = await asyncio.gather(
        change_cart(store, "u1", add("mug", 60), metadata=META),
        change_cart(store, "u1", add("mug", 60), metadata=META),
        return_exceptions=True,
    )
    outcomes = sorted([first, second], key=lambda o: isinstance(o, Exception))
    assert isinstance(outcomes[1], domain.QuantityOutOfRange)  # 120 > 99 on the new state
    assert await events_of(store, "u1") == [CartItemAdded("mug", "Mug", Decimal("2.50"), "EUR", 60)]


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


class FakeProducts:
    """The products port: what it sells, by id."""

    def __init__(self, *products: Product) -> None:
        self.sold_ids = {p.id: p for p in products if p.active}
        self.asked: list[str] = []

    async def sold(self, product_id: str) -> Product:
        self.asked.append(product_id)
        product = self.sold_ids.get(product_id)
        if product is None:
            raise domain.UnknownProduct(product_id)
        return product


MUG = Product("mug-1", "Mug", Decimal("4.5"), "EUR", active=True)
OLD = Product("old-1", "Old", Decimal("1.00"), "EUR", active=False)


async def test_an_item_goes_in_at_the_price_of_the_moment() -> None:
    store, products = InMemoryEventStore(), FakeProducts(MUG, OLD)
    done = await add_to_cart(store, products, "u1", "mug-1", 2, metadata=META)
    assert done.events == (CartItemAdded("mug-1", "Mug", Decimal("4.50"), "EUR", 2),)
    assert done.state.total == Decimal("9.00") and products.asked == ["mug-1"]


async def test_a_product_not_sold_is_refused_and_nothing_written() -> None:
    store, products = InMemoryEventStore(), FakeProducts(MUG, OLD)
    for product_id in ("old-1", "nope"):
        with pytest.raises(domain.UnknownProduct) as refused:
            await add_to_cart(store, products, "u1", product_id, 1, metadata=META)
        assert refused.value.code == "unknown_product"
        assert refused.value.details == {"product_id": [f"no active product {product_id}"]}
    assert await events_of(store, "u1") == []


# -- checkout ----------------------------------------------------------------------------

ORDER_ID = "0b6f7f43-2a8e-4f0e-9d3c-5a1b2c3d4e5f"


def order_placed(user_id: str = "u1", **data: Any) -> RecordedEvent:
    payload = {
        "order_id": ORDER_ID,
        "user_id": user_id,
        "items": [
            {"product_id": "mug", "name": "Mug", "unit_price": "2.50", "quantity": 2},
            {"product_id": "tea", "name": "Tea", "unit_price": "2.50", "quantity": 1},
        ],
        "total": "7.50",
        "currency": "EUR",
        **data,
    }
    return RecordedEvent(
        7,
        7,
        f"order-{ORDER_ID}",
        1,
        uuid.uuid4(),
        "OrderPlaced",
        1,
        payload,
        Metadata(correlation_id="corr-1", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
        datetime.now(UTC),
    )


async def given_mugs_and_tea(store: InMemoryEventStore) -> None:
    await change_cart(store, "u1", add("mug", 3), metadata=META)
    await change_cart(store, "u1", add("tea", 1), metadata=META)


async def test_checking_out_takes_what_the_order_took_once() -> None:
    store = InMemoryEventStore()
    await given_mugs_and_tea(store)
    event = order_placed()
    placed = placed_order(event.data)
    assert placed == PlacedOrder(ORDER_ID, "u1", (("mug", 2), ("tea", 1)))
    done = await check_out_order(store, placed, metadata=checkout_metadata(event, placed.user_id))
    assert done.events == (CartCheckedOut(ORDER_ID, (("mug", 2), ("tea", 1))),)
    assert [(line.product_id, line.quantity) for line in done.state.lines] == [("mug", 1)]
    last = (await store.read_stream(CART.stream("u1")))[-1]
    assert last.event_id == checkout_event_id(ORDER_ID)
    assert last.metadata == Metadata(
        correlation_id="corr-1",
        causation_id=str(event.event_id),
        actor="u1",
        service="cart",
        traceparent=event.metadata.traceparent,
    )
    with pytest.raises(DuplicateEventError):  # a second delivery of the same order
        await check_out_order(store, placed, metadata=META)
    assert len(await events_of(store, "u1")) == 3


async def test_a_checkout_racing_a_change_takes_only_what_was_ordered() -> None:
    store = RacingStore()
    await given_mugs_and_tea(store)
    lost_before = store.lost
    placed = placed_order(order_placed().data)
    await asyncio.gather(
        check_out_order(store, placed, metadata=META),
        change_cart(store, "u1", add("cup", 1), metadata=META),
    )
    assert store.lost > lost_before  # the checkout lost to the change and was decided again
    cart = (await CART.load(store, "u1")).state
    assert sorted((line.product_id, line.quantity) for line in cart.lines) == [
        ("cup", 1),
        ("mug", 1),
    ]


async def test_an_order_of_an_empty_cart_is_still_recorded() -> None:
    store = InMemoryEventStore()
    done = await check_out_order(store, placed_order(order_placed().data), metadata=META)
    assert done.state.is_empty and done.version == 1


@pytest.mark.parametrize(
    "data",
    [
        {"items": []},
        {"order_id": "not-a-uuid"},
        {"items": [{"product_id": "mug", "quantity": 0}]},
        {"user_id": ""},
    ],
)
def test_a_malformed_order_placed_is_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(Reject, match="malformed OrderPlaced"):
        placed_order(order_placed(**data).data)

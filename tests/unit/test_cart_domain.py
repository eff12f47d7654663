"""The cart domain as given (past events) / when (a decision) / then (new events or an error)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from services.cart.domain import (
    EMPTY,
    Cart,
    CartCheckedOut,
    CartCleared,
    CartEvent,
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
    CurrencyMismatch,
    DomainError,
    ItemNotInCart,
    Line,
    QuantityOutOfRange,
    add_item,
    change_quantity,
    check_out,
    clear,
    fold,
    remove_item,
)
from services.cart.domain.pricing import (
    CatalogEntry,
    CatalogFact,
    Discontinued,
    Listed,
    PriceChanged,
    Revised,
    apply_fact,
    price,
)

Decide = Callable[[Cart], Sequence[CartEvent]]


def added(
    product_id: str, quantity: int, price: str = "10.00", currency: str = "EUR"
) -> CartItemAdded:
    return CartItemAdded(product_id, f"Product {product_id}", Decimal(price), currency, quantity)


def given(*events: CartEvent) -> Cart:
    return fold(events)


def then(history: Sequence[CartEvent], decide: Decide) -> list[CartEvent]:
    return list(decide(given(*history)))


def then_raises(
    history: Sequence[CartEvent], decide: Decide, error: type[DomainError]
) -> DomainError:
    with pytest.raises(error) as caught:
        decide(given(*history))
    return caught.value


def add(product_id: str, quantity: int, price: str = "10.00", currency: str = "EUR") -> Decide:
    return lambda cart: add_item(
        cart,
        product_id=product_id,
        name=f"Product {product_id}",
        unit_price=Decimal(price),
        currency=currency,
        quantity=quantity,
    )


# -- the fold ----------------------------------------------------------------------------


def test_a_new_cart_is_empty_without_currency() -> None:
    assert given() == EMPTY
    assert EMPTY.lines == () and EMPTY.currency is None and EMPTY.version == 0
    assert EMPTY.total == Decimal("0.00") and str(EMPTY.total) == "0.00"


def test_adds_accumulate_on_one_line_and_totals_are_in_cents() -> None:
    cart = given(added("a", 2, "19.99"), added("b", 1, "5"), added("a", 3, "19.99"))
    assert cart.lines == (
        Line("a", "Product a", Decimal("19.99"), 5),
        Line("b", "Product b", Decimal("5"), 1),
    )
    assert cart.lines[0].line_total == Decimal("99.95")
    assert str(cart.total) == "104.95"
    assert cart.currency == "EUR"
    assert cart.version == 3


def test_adding_again_shows_the_latest_captured_name_and_price() -> None:
    renamed = CartItemAdded("a", "New name", Decimal("12.50"), "EUR", 1)
    cart = given(added("a", 2, "10.00"), renamed)
    assert cart.lines == (Line("a", "New name", Decimal("12.50"), 3),)


def test_quantity_changes_removals_and_clearing_fold() -> None:
    cart = given(added("a", 2), added("b", 1), CartItemQuantityChanged("a", 7))
    assert [(line.product_id, line.quantity) for line in cart.lines] == [("a", 7), ("b", 1)]
    cart = fold([CartItemRemoved("a")], cart)
    assert [line.product_id for line in cart.lines] == ["b"]
    assert cart.currency == "EUR"
    cart = fold([CartItemRemoved("b")], cart)
    assert cart.lines == () and cart.currency is None and cart.version == 5
    cart = given(added("a", 1), added("b", 2), CartCleared())
    assert cart.lines == () and cart.currency is None and cart.version == 3


def test_unknown_events_only_bump_the_version() -> None:
    cart = fold([added("a", 1), {"some": "future event"}])
    assert cart.version == 2
    assert cart.lines == (Line("a", "Product a", Decimal("10.00"), 1),)


# -- adding ------------------------------------------------------------------------------


def test_add_records_the_catalog_price_in_cents() -> None:
    assert then([], add("a", 2, "19.9")) == [
        CartItemAdded("a", "Product a", Decimal("19.90"), "EUR", 2)
    ]


@pytest.mark.parametrize("quantity", [0, -1, 100])
def test_add_refuses_quantities_outside_1_to_99(quantity: int) -> None:
    error = then_raises([], add("a", quantity), QuantityOutOfRange)
    assert error.code == "quantity_out_of_range"


def test_add_refuses_a_line_beyond_99_in_total() -> None:
    assert then([added("a", 98)], add("a", 1)) == [added("a", 1)]
    error = then_raises([added("a", 98)], add("a", 2), QuantityOutOfRange)
    assert error.details == {"product_id": "a", "quantity": 100, "maximum": 99}


def test_add_refuses_a_second_currency() -> None:
    error = then_raises([added("a", 1)], add("b", 1, currency="USD"), CurrencyMismatch)
    assert error.code == "currency_mismatch"
    assert error.details["cart_currency"] == "EUR" and error.details["currency"] == "USD"


def test_an_emptied_cart_takes_any_currency_again() -> None:
    for emptied in (CartItemRemoved("a"), CartCleared()):
        history = [added("a", 1), emptied]
        assert then(history, add("b", 1, currency="USD")) == [added("b", 1, currency="USD")]


# -- changing quantities and removing ----------------------------------------------------


def test_change_quantity_sets_the_line() -> None:
    assert then([added("a", 2)], lambda c: change_quantity(c, "a", 5)) == [
        CartItemQuantityChanged("a", 5)
    ]
    assert then([added("a", 2)], lambda c: change_quantity(c, "a", 99)) == [
        CartItemQuantityChanged("a", 99)
    ]


def test_change_quantity_to_zero_removes_the_line() -> None:
    assert then([added("a", 2)], lambda c: change_quantity(c, "a", 0)) == [CartItemRemoved("a")]


def test_change_quantity_to_the_current_one_records_nothing() -> None:
    assert then([added("a", 2)], lambda c: change_quantity(c, "a", 2)) == []


@pytest.mark.parametrize("quantity", [-1, 100])
def test_change_quantity_refuses_out_of_range(quantity: int) -> None:
    then_raises([added("a", 2)], lambda c: change_quantity(c, "a", quantity), QuantityOutOfRange)


@pytest.mark.parametrize("history", [[], [added("b", 1)], [added("a", 1), CartItemRemoved("a")]])
def test_changing_or_removing_a_line_not_in_the_cart_fails(history: list[CartEvent]) -> None:
    error = then_raises(history, lambda c: change_quantity(c, "a", 1), ItemNotInCart)
    assert error.code == "item_not_in_cart" and error.details == {"product_id": "a"}
    then_raises(history, lambda c: change_quantity(c, "a", 0), ItemNotInCart)
    then_raises(history, lambda c: remove_item(c, "a"), ItemNotInCart)


def test_remove_item() -> None:
    assert then([added("a", 2), added("b", 1)], lambda c: remove_item(c, "a")) == [
        CartItemRemoved("a")
    ]


def test_clear_records_only_when_there_is_something_to_clear() -> None:
    assert then([added("a", 2)], clear) == [CartCleared()]
    assert then([], clear) == []
    assert then([added("a", 2), CartCleared()], clear) == []


# -- checkout ----------------------------------------------------------------------------


def test_check_out_records_the_order_lines_summed_per_product() -> None:
    assert then([added("a", 3)], lambda c: check_out(c, "o-1", [("a", 1), ("b", 2), ("a", 1)])) == [
        CartCheckedOut("o-1", (("a", 2), ("b", 2)))
    ]


def test_check_out_refuses_lines_without_units() -> None:
    then_raises([added("a", 3)], lambda c: check_out(c, "o-1", [("a", 0)]), QuantityOutOfRange)


def test_checkout_subtracts_exactly_what_the_order_took() -> None:
    # the order took 2 of a and 1 of b; afterwards the user added 4 more a and some c
    cart = given(
        added("a", 2, "19.99"),
        added("b", 1, "5.00"),
        added("a", 4, "19.99"),
        added("c", 1, "1.00"),
        CartCheckedOut("o-1", (("a", 2), ("b", 1))),
    )
    assert [(line.product_id, line.quantity) for line in cart.lines] == [("a", 4), ("c", 1)]
    assert str(cart.total) == "80.96"
    assert cart.currency == "EUR"
    assert cart.version == 5


def test_checkout_never_goes_below_zero_and_ignores_lines_already_gone() -> None:
    cart = given(
        added("a", 2),
        CartItemQuantityChanged("a", 1),
        added("b", 1),
        CartItemRemoved("b"),
        CartCheckedOut("o-1", (("a", 2), ("b", 1), ("z", 5))),
    )
    assert cart.lines == () and cart.currency is None and cart.total == Decimal("0.00")


def test_checkout_of_the_whole_cart_empties_it() -> None:
    cart = given(added("a", 2), added("b", 1), CartCheckedOut("o-1", (("a", 2), ("b", 1))))
    assert cart.lines == () and cart.currency is None
    assert then([added("a", 2), CartCheckedOut("o-1", (("a", 2),))], clear) == []


def test_item_added_version_1_reads_as_version_2_without_a_sku() -> None:
    from eventstore import registry
    from services.cart import events as _cart_events  # noqa: F401  (registers the types)

    v1 = (
        '{"product_id": "a", "name": "Tee", "unit_price": "3.10", "currency": "EUR", "quantity": 2}'
    )
    assert registry.type_of(CartItemAdded("a", "Tee", Decimal("3.10"), "EUR", 2)) == (
        "CartItemAdded",
        2,
    )
    assert registry.decode("CartItemAdded", 1, v1) == CartItemAdded(
        "a", "Tee", Decimal("3.10"), "EUR", 2, sku=None
    )
    cart = fold(
        [
            registry.decode("CartItemAdded", 1, v1),
            CartItemAdded("a", "Tee", Decimal("3.20"), "EUR", 1, sku="TEE-1"),
        ]
    )
    assert cart.lines == (Line("a", "Tee", Decimal("3.20"), 3, "TEE-1"),)


# -- pricing at the catalog's current prices ---------------------------------------------


def catalog(*facts: CatalogFact) -> dict[str, CatalogEntry]:
    entries: dict[str, CatalogEntry | None] = {}
    for fact in facts:
        entries[fact.product_id] = apply_fact(entries.get(fact.product_id), fact)
    return {k: v for k, v in entries.items() if v is not None}


def listed(product_id: str, price: str = "10.00", currency: str = "EUR") -> Listed:
    return Listed(
        product_id, f"SKU-{product_id}", f"Product {product_id}", Decimal(price), currency
    )


def test_a_cart_is_priced_at_the_catalogs_price_not_the_price_it_was_added_at() -> None:
    cart = fold([added("a", 5, price="1.00"), added("b", 2, price="3.00")])
    now = catalog(
        listed("a", "1.00"), PriceChanged("a", Decimal("500.00"), "EUR"), listed("b", "3.00")
    )
    priced = price(cart, now)
    assert [(line.unit_price, line.line_total, line.available) for line in priced.lines] == [
        (Decimal("500.00"), Decimal("2500.00"), True),
        (Decimal("3.00"), Decimal("6.00"), True),
    ]
    assert priced.total == Decimal("2506.00")
    assert priced.version == cart.version and priced.unavailable == ()


def test_discontinued_unknown_and_other_currency_lines_are_unavailable_and_not_counted() -> None:
    cart = fold([added("a", 1), added("b", 1), added("c", 1), added("d", 2, price="4.00")])
    now = catalog(
        listed("a"),
        Revised("a", "Renamed a"),
        Discontinued("a"),
        listed("c"),
        PriceChanged("c", Decimal("9.00"), "USD"),
        listed("d", "4.50"),
    )  # "b" is unknown to the catalog
    priced = price(cart, now)
    assert [(line.product_id, line.name, line.available) for line in priced.unavailable] == [
        ("a", "Renamed a", False),
        ("b", "Product b", False),  # as it was added: the catalog has nothing else
        ("c", "Product c", False),
    ]
    assert priced.total == Decimal("9.00")  # d alone, at its new price


def test_changes_to_a_product_never_listed_make_no_entry() -> None:
    assert catalog(PriceChanged("x", Decimal("1.00"), "EUR"), Discontinued("x")) == {}
    assert price(EMPTY, {}).total == Decimal("0.00")

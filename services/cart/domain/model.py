"""The cart as a fold of its events, and the decisions that produce new ones.

State is immutable: `apply(cart, event)` returns a new `Cart`. Decisions take the current
cart and return the events to record (an empty list when nothing changes) or raise a
`DomainError`. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from .errors import CurrencyMismatch, ItemNotInCart, QuantityOutOfRange
from .events import (
    CartCheckedOut,
    CartCleared,
    CartEvent,
    CartItemAdded,
    CartItemQuantityChanged,
    CartItemRemoved,
)

__all__ = [
    "EMPTY",
    "MAX_QUANTITY",
    "Cart",
    "Line",
    "add_item",
    "apply",
    "change_quantity",
    "check_out",
    "clear",
    "fold",
    "money",
    "remove_item",
]

MAX_QUANTITY = 99
_CENT = Decimal("0.01")


def money(amount: Decimal) -> Decimal:
    """`amount` rounded to cents (half up), the precision of every price and total."""
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    product_id: str
    name: str
    unit_price: Decimal
    quantity: int
    sku: str | None = None  # None: added before carts recorded SKUs

    @property
    def line_total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclasses.dataclass(frozen=True, slots=True)
class Cart:
    """Lines in the order they were first added; `currency` is None while the cart is empty.

    `version` is the number of events folded, i.e. the stream version to append after.
    """

    lines: tuple[Line, ...] = ()
    currency: str | None = None
    version: int = 0

    def line(self, product_id: str) -> Line | None:
        return next((line for line in self.lines if line.product_id == product_id), None)

    @property
    def total(self) -> Decimal:
        return money(sum((line.line_total for line in self.lines), Decimal(0)))

    @property
    def is_empty(self) -> bool:
        return not self.lines


EMPTY = Cart()


# -- the fold ----------------------------------------------------------------------------


def _with_lines(cart: Cart, lines: Iterable[Line], currency: str | None) -> Cart:
    kept = tuple(line for line in lines if line.quantity > 0)
    return Cart(kept, currency if kept else None, cart.version + 1)


def apply(cart: Cart, event: object) -> Cart:
    """The cart after `event`. Unknown events (from a newer writer) only bump the version."""
    match event:
        case CartItemAdded(product_id, name, unit_price, currency, quantity, sku):
            if cart.line(product_id) is None:
                lines = (*cart.lines, Line(product_id, name, unit_price, quantity, sku))
            else:
                lines = tuple(
                    Line(product_id, name, unit_price, line.quantity + quantity, sku or line.sku)
                    if line.product_id == product_id
                    else line
                    for line in cart.lines
                )
            return _with_lines(cart, lines, currency)
        case CartItemQuantityChanged(product_id, quantity):
            lines = tuple(
                dataclasses.replace(line, quantity=quantity)
                if line.product_id == product_id
                else line
                for line in cart.lines
            )
            return _with_lines(cart, lines, cart.currency)
        case CartItemRemoved(product_id):
            lines = tuple(line for line in cart.lines if line.product_id != product_id)
            return _with_lines(cart, lines, cart.currency)
        case CartCleared():
            return _with_lines(cart, (), None)
        case CartCheckedOut(_, taken):
            return _with_lines(cart, _subtract(cart.lines, taken), cart.currency)
    return dataclasses.replace(cart, version=cart.version + 1)


def _subtract(lines: tuple[Line, ...], taken: Iterable[tuple[str, int]]) -> list[Line]:
    remaining = {line.product_id: line.quantity for line in lines}
    for product_id, quantity in taken:
        if product_id in remaining:
            remaining[product_id] -= quantity
    return [dataclasses.replace(line, quantity=remaining[line.product_id]) for line in lines]


def fold(events: Iterable[object], cart: Cart = EMPTY) -> Cart:
    """`cart` (default: a new one) after `events`, in order."""
    for event in events:
        cart = apply(cart, event)
    return cart


# -- decisions ---------------------------------------------------------------------------


def _check_quantity(product_id: str, quantity: int, minimum: int = 1) -> None:
    if not minimum <= quantity <= MAX_QUANTITY:
        raise QuantityOutOfRange(product_id, quantity, MAX_QUANTITY)


def add_item(
    cart: Cart,
    *,
    product_id: str,
    name: str,
    unit_price: Decimal,
    currency: str,
    quantity: int,
    sku: str | None = None,
) -> list[CartEvent]:
    """Put `quantity` units of a product, priced as the catalog says now, into the cart."""
    _check_quantity(product_id, quantity)
    if cart.currency is not None and cart.currency != currency:
        raise CurrencyMismatch(product_id, cart.currency, currency)
    line = cart.line(product_id)
    if line is not None:
        _check_quantity(product_id, line.quantity + quantity)
    return [CartItemAdded(product_id, name, money(unit_price), currency, quantity, sku)]


def change_quantity(cart: Cart, product_id: str, quantity: int) -> list[CartEvent]:
    """Set a line's quantity; 0 removes the line. Setting the current quantity records nothing."""
    line = cart.line(product_id)
    if line is None:
        raise ItemNotInCart(product_id)
    _check_quantity(product_id, quantity, minimum=0)
    if quantity == 0:
        return [CartItemRemoved(product_id)]
    if quantity == line.quantity:
        return []
    return [CartItemQuantityChanged(product_id, quantity)]


def remove_item(cart: Cart, product_id: str) -> list[CartEvent]:
    if cart.line(product_id) is None:
        raise ItemNotInCart(product_id)
    return [CartItemRemoved(product_id)]


def clear(cart: Cart) -> list[CartEvent]:
    """Empty the cart; an empty cart records nothing."""
    return [] if cart.is_empty else [CartCleared()]


def check_out(cart: Cart, order_id: str, lines: Iterable[tuple[str, int]]) -> list[CartEvent]:
    """Record that order `order_id` took `lines` out of the cart.

    The fact is recorded as the order states it (repeated products summed), whatever the
    cart holds now: the fold subtracts what is there and never goes below zero.
    """
    merged: dict[str, int] = {}
    for product_id, quantity in lines:
        if quantity < 1:
            raise QuantityOutOfRange(product_id, quantity, MAX_QUANTITY)
        merged[product_id] = merged.get(product_id, 0) + quantity
    return [CartCheckedOut(order_id, tuple(merged.items()))]

"""What a cart costs now: its lines priced at the catalog's current prices.

A cart records what was put into it, and at what price (`CartItemAdded.unit_price`, a
fact of that moment). What it costs is the catalog's business: the cart follows the
catalog's events (`CatalogFact`s, read from product-service's), folds them into one
`CatalogEntry` per product, and `price` shows every line at the entry's price. A line
whose product is discontinued, unknown to the catalog or priced in another currency than
the cart is `available=False`: it stays in the cart, counts for nothing in the total, and
an order refuses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import TypeAlias

from .model import Cart, money

__all__ = [
    "CatalogEntry",
    "CatalogFact",
    "Discontinued",
    "Listed",
    "PriceChanged",
    "PricedCart",
    "PricedLine",
    "Revised",
    "apply_fact",
    "price",
]


# -- the catalog as the cart folds it ----------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Listed:
    """A product entered the catalog (product-service's `ProductCreated`)."""

    product_id: str
    sku: str
    name: str
    price: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Revised:
    """A product's name changed, maybe (`ProductUpdated`: its fields after the change)."""

    product_id: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class PriceChanged:
    """A product has a new price (`ProductPriceChanged`)."""

    product_id: str
    price: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Discontinued:
    """A product is no longer sold (`ProductDiscontinued`)."""

    product_id: str


CatalogFact: TypeAlias = Listed | Revised | PriceChanged | Discontinued


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A product as carts see it now."""

    product_id: str
    sku: str | None
    name: str
    price: Decimal
    currency: str
    active: bool


def apply_fact(entry: CatalogEntry | None, fact: CatalogFact) -> CatalogEntry | None:
    """The entry after `fact` (None: the catalog does not know the product yet)."""
    match fact:
        case Listed(product_id, sku, name, unit_price, currency):
            return CatalogEntry(product_id, sku, name, money(unit_price), currency, active=True)
        case _ if entry is None:
            return None  # a change to a product the catalog never listed: nothing to change
        case Revised(_, name):
            return dataclasses.replace(entry, name=name)
        case PriceChanged(_, unit_price, currency):
            return dataclasses.replace(entry, price=money(unit_price), currency=currency)
        case Discontinued():
            return dataclasses.replace(entry, active=False)
    raise TypeError(f"not a catalog fact: {fact!r}")  # pragma: no cover - the union is closed


# -- a cart at today's prices ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PricedLine:
    product_id: str
    sku: str | None
    name: str
    unit_price: Decimal
    quantity: int
    available: bool

    @property
    def line_total(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclasses.dataclass(frozen=True, slots=True)
class PricedCart:
    """A cart's lines at the catalog's prices; `total` counts the available lines only."""

    lines: tuple[PricedLine, ...]
    currency: str | None
    version: int

    @property
    def total(self) -> Decimal:
        return money(sum((line.line_total for line in self.lines if line.available), Decimal(0)))

    @property
    def unavailable(self) -> tuple[PricedLine, ...]:
        return tuple(line for line in self.lines if not line.available)


def price(cart: Cart, catalog: Mapping[str, CatalogEntry]) -> PricedCart:
    """`cart` at the prices of `catalog` (product id -> entry, for the cart's products).

    A product the catalog does not know keeps the name and price it was added with, and
    is unavailable, like a discontinued one or one now priced in another currency.
    """
    lines = []
    for line in cart.lines:
        entry = catalog.get(line.product_id)
        if entry is None:
            priced = PricedLine(
                line.product_id, line.sku, line.name, line.unit_price, line.quantity, False
            )
        else:
            available = entry.active and entry.currency == cart.currency
            sku = entry.sku or line.sku
            priced = PricedLine(
                line.product_id, sku, entry.name, entry.price, line.quantity, available
            )
        lines.append(priced)
    return PricedCart(tuple(lines), cart.currency, cart.version)

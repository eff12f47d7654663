"""The product aggregate: its state as a fold of its events, and the decisions on it.

Decisions take the current state (None: no such product yet) and return the events to
record, possibly none when nothing would change, or raise a `DomainError`. They never
mutate anything; the caller appends the events with the stream version it loaded.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Final, assert_never

from . import rules
from .errors import ProductAlreadyExists, ProductIsDiscontinued, ProductNotFound
from .events import (
    ProductCreated,
    ProductDiscontinued,
    ProductEvent,
    ProductPriceChanged,
    ProductUpdated,
)

__all__ = [
    "KEEP",
    "Keep",
    "NewProduct",
    "Product",
    "ProductChanges",
    "apply",
    "change_price",
    "create",
    "discontinue",
    "fold",
    "revise",
    "update",
]


class Keep(enum.Enum):
    """Marks a field a change leaves as it is (distinct from None, a value of its own)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """A product as its events leave it. `image_url=None`: the generated image."""

    product_id: uuid.UUID
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    image_url: str | None
    active: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class NewProduct:
    """What `create` needs to add a product to the catalog."""

    sku: str
    name: str
    price: Decimal
    description: str = ""
    currency: str = rules.DEFAULT_CURRENCY
    image_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ProductChanges:
    """A partial change (PATCH): fields left at `KEEP` stay as they are."""

    name: str | Keep = KEEP
    description: str | Keep = KEEP
    image_url: str | Keep | None = KEEP
    price: Decimal | Keep = KEEP

    @property
    def is_empty(self) -> bool:
        return all(
            isinstance(v, Keep) for v in (self.name, self.description, self.image_url, self.price)
        )


# -- the fold ----------------------------------------------------------------------------


def apply(state: Product | None, event: ProductEvent) -> Product:
    """The state after `event`. A stream must start with `ProductCreated`."""
    if isinstance(event, ProductCreated):
        if state is not None:
            raise ValueError(f"product {event.product_id} is created twice")
        return Product(
            product_id=event.product_id,
            sku=event.sku,
            name=event.name,
            description=event.description,
            price=event.price,
            currency=event.currency,
            image_url=event.image_url,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before ProductCreated")
    if isinstance(event, ProductUpdated):
        return dataclasses.replace(
            state, name=event.name, description=event.description, image_url=event.image_url
        )
    if isinstance(event, ProductPriceChanged):
        return dataclasses.replace(state, price=event.new_price, currency=event.currency)
    if isinstance(event, ProductDiscontinued):
        return dataclasses.replace(state, active=False)
    assert_never(event)


def fold(events: Iterable[ProductEvent], state: Product | None = None) -> Product | None:
    """The state after `events`, starting from `state`."""
    for event in events:
        state = apply(state, event)
    return state


# -- decisions ---------------------------------------------------------------------------


def _changeable(state: Product | None) -> Product:
    if state is None:
        raise ProductNotFound()
    if not state.active:
        raise ProductIsDiscontinued(state.product_id)
    return state


def create(state: Product | None, product_id: uuid.UUID, new: NewProduct) -> list[ProductEvent]:
    """Add a product. (SKU uniqueness spans products; the service enforces it on append.)"""
    if state is not None:
        raise ProductAlreadyExists(product_id)
    return [
        ProductCreated(
            product_id=product_id,
            sku=rules.valid_sku(new.sku),
            name=rules.valid_name(new.name),
            description=rules.valid_description(new.description),
            price=rules.valid_price(new.price),
            currency=rules.valid_currency(new.currency),
            image_url=rules.valid_image_url(new.image_url),
        )
    ]


def update(
    state: Product | None,
    *,
    name: str | Keep = KEEP,
    description: str | Keep = KEEP,
    image_url: str | Keep | None = KEEP,
) -> list[ProductEvent]:
    """Change the descriptive fields; no event when the values are already those."""
    product = _changeable(state)
    after = (
        product.name if isinstance(name, Keep) else rules.valid_name(name),
        product.description
        if isinstance(description, Keep)
        else rules.valid_description(description),
        product.image_url if isinstance(image_url, Keep) else rules.valid_image_url(image_url),
    )
    if after == (product.name, product.description, product.image_url):
        return []
    return [ProductUpdated(product.product_id, *after)]


def change_price(state: Product | None, new_price: Decimal) -> list[ProductEvent]:
    """Set a new price (same currency); no event when it is the current one."""
    product = _changeable(state)
    price = rules.valid_price(new_price)
    if price == product.price:
        return []
    return [ProductPriceChanged(product.product_id, product.price, price, product.currency)]


def revise(state: Product | None, changes: ProductChanges) -> list[ProductEvent]:
    """A partial change of any fields: `update` and, for a new price, `change_price`."""
    events = update(
        state, name=changes.name, description=changes.description, image_url=changes.image_url
    )
    if not isinstance(changes.price, Keep):
        events += change_price(state, changes.price)
    return events


def discontinue(state: Product | None) -> list[ProductEvent]:
    """Take the product out of the catalog; discontinuing it again changes nothing."""
    if state is None:
        raise ProductNotFound()
    if not state.active:
        return []
    return [ProductDiscontinued(state.product_id)]

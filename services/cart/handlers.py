"""Use cases: change a cart with optimistic concurrency, and check a cart out on `OrderPlaced`.

Both go through `CART.execute`: load the user's stream (from a snapshot when given), let a
pure decision turn the cart into new events, and append them at the version they were
decided on. A lost race (`ConcurrencyError`) means another writer appended first: reload,
decide again, retry with jittered backoff. So concurrent changes to one cart never
overwrite each other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import marshmallow
import msgspec

from eventstore import (
    Aggregate,
    DuplicateEventError,
    EventStore,
    Executed,
    HandlerContext,
    Metadata,
    RecordedEvent,
    Reject,
    Snapshot,
)
from microshop import context

from .domain import EMPTY, Cart, CartEvent, DomainError, add_item, check_out, fold
from .events import CART_STREAMS
from .products import Products
from .projections import snapshot_of
from .schemas import OrderPlacedSchema, PlacedOrder

__all__ = [
    "CART",
    "CHECKOUT_NAMESPACE",
    "Decision",
    "add_to_cart",
    "change_cart",
    "check_out_order",
    "checkout_event_id",
    "checkout_metadata",
    "on_order_placed",
    "placed_order",
]

log = logging.getLogger(__name__)

CHECKOUT_NAMESPACE = uuid.UUID("6f1f3c2e-5d0b-4d7c-9a57-0c3f2b1e8a44")
"""Namespace of `uuid5` event ids of `CartCheckedOut`: one id per order, ever."""

CART = Aggregate(CART_STREAMS, fold, EMPTY, remembers=True)
"""A user's cart: `cart-{user_id}` folded from the empty cart. It remembers each cart's last
state: a change to a cart this process changed before reads nothing first."""

Decision = Callable[[Cart], Sequence[CartEvent]]


async def change_cart(
    store: EventStore,
    user_id: str,
    decide: Decision,
    *,
    metadata: Metadata,
    snapshot: Snapshot[Cart] | None = None,
) -> Executed[Cart]:
    """Apply `decide` to `user_id`'s current cart and append what it records.

    `snapshot` (the read model's row) saves folding a long stream from the start. Raises
    the decision's `DomainError`, or `ConcurrencyError` when the cart kept changing under
    us (HTTP 409).
    """
    return await CART.execute(store, user_id, decide, metadata=metadata, snapshot=snapshot)


async def add_to_cart(
    store: EventStore,
    products: Products,
    user_id: str,
    product_id: str,
    quantity: int,
    *,
    metadata: Metadata,
    snapshot: Snapshot[Cart] | None = None,
) -> Executed[Cart]:
    """Put `quantity` of a product into `user_id`'s cart at the price `products` asks now.

    A product `products` does not sell is `UnknownProduct`; nothing is written then.
    """
    product = await products.sold(product_id)
    return await change_cart(
        store,
        user_id,
        lambda cart: add_item(
            cart,
            product_id=product.id,
            name=product.name,
            unit_price=product.price,
            currency=product.currency,
            quantity=quantity,
            sku=product.sku,
        ),
        metadata=metadata,
        snapshot=snapshot,
    )


# -- checkout ----------------------------------------------------------------------------

_ORDER_PLACED = OrderPlacedSchema()


def checkout_event_id(order_id: str) -> uuid.UUID:
    """The event id of the `CartCheckedOut` of `order_id`: a second append is a duplicate."""
    return uuid.uuid5(CHECKOUT_NAMESPACE, order_id)


def placed_order(data: object) -> PlacedOrder:
    """The `OrderPlaced` payload as the cart needs it; `Reject` (park it) when malformed.

    `data` is a plain dict here (this process does not register `OrderPlaced`); a typed
    event, should a process register it, is turned into the same JSON form first.
    """
    try:
        placed: PlacedOrder = _ORDER_PLACED.load(msgspec.to_builtins(data))
    except (marshmallow.ValidationError, TypeError) as exc:
        detail = exc.messages if isinstance(exc, marshmallow.ValidationError) else exc
        raise Reject(f"malformed OrderPlaced: {detail}") from exc
    return placed


def checkout_metadata(event: RecordedEvent, user_id: str) -> Metadata:
    """The metadata of the `CartCheckedOut` that `event` (an `OrderPlaced`) causes: in the
    order's correlation and trace, caused by that event, acted by the buyer."""
    return Metadata(
        correlation_id=event.metadata.correlation_id,
        causation_id=str(event.event_id),
        actor=user_id,
        service="cart",
        traceparent=context.traceparent.get() or event.metadata.traceparent,
    )


async def check_out_order(
    store: EventStore,
    placed: PlacedOrder,
    *,
    metadata: Metadata,
    snapshot: Snapshot[Cart] | None = None,
    conn: Any = None,
) -> Executed[Cart]:
    """Take what order `placed` took out of the buyer's cart.

    The event id is derived from the order id, so a second checkout of the same order is
    a `DuplicateEventError` and writes nothing. With `conn`, in the caller's transaction.
    """
    return await CART.execute(
        store,
        placed.user_id,
        lambda cart: check_out(cart, placed.order_id, placed.lines),
        metadata=metadata,
        event_ids=[checkout_event_id(placed.order_id)],
        snapshot=snapshot,
        conn=conn,
    )


async def on_order_placed(ctx: HandlerContext) -> None:
    """Take the ordered quantities out of the buyer's cart, exactly once per order.

    Consumes `order.OrderPlaced`; the payload contract order-service must keep is stated
    on `schemas.OrderPlacedSchema` (`order_id`, `user_id`, `items[].product_id/quantity`).
    Once: the inbox entry and the append share one transaction, and the event id is derived
    from the order id, so even a delivery racing past the inbox ends in a
    `DuplicateEventError` (already done). Concurrent cart changes are retried like above;
    if they never let up, the consumer retries the message later.
    """
    placed = placed_order(ctx.event.data)
    store = ctx.consumer.store
    metadata = checkout_metadata(ctx.event, placed.user_id)
    try:
        async with ctx.transaction() as conn:
            done = await check_out_order(
                store,
                placed,
                metadata=metadata,
                snapshot=snapshot_of(store.pool, placed.user_id),
                conn=conn,
            )
        CART.remember(store, placed.user_id, done)  # committed: the next add reads nothing
    except DuplicateEventError:
        log.info("order %s was checked out of the cart before", placed.order_id)
    except DomainError as exc:
        raise Reject(f"order {placed.order_id}: {exc}") from exc

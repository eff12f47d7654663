"""Use cases: change a cart with optimistic concurrency, and check a cart out on `OrderPlaced`.

Both load the user's stream, let a pure decision turn the cart into new events, and append
them with the version they decided on. Losing a race (`ConcurrencyError`) means another
writer appended first: reload, decide again, retry (bounded, with jittered backoff). So
concurrent changes to one cart never overwrite each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Sequence

import marshmallow
import msgspec

from eventstore import (
    ConcurrencyError,
    DuplicateEventError,
    HandlerContext,
    Metadata,
    Position,
    PostgresEventStore,
    Reject,
)
from eventstore.pg import Conn
from microshop import context

from .domain import EMPTY, Cart, CartEvent, DomainError, check_out, fold
from .projections import cart_of_row, stream_of
from .schemas import OrderPlacedSchema, PlacedOrder

__all__ = [
    "CHECKOUT_NAMESPACE",
    "MAX_ATTEMPTS",
    "Decision",
    "Outcome",
    "change_cart",
    "checkout_event_id",
    "load_cart",
    "on_order_placed",
    "placed_order",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
CHECKOUT_NAMESPACE = uuid.UUID("6f1f3c2e-5d0b-4d7c-9a57-0c3f2b1e8a44")
"""Namespace of `uuid5` event ids of `CartCheckedOut`: one id per order, ever."""

Decision = Callable[[Cart], Sequence[CartEvent]]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The cart after a change, and where its events landed in the log (None: no change)."""

    cart: Cart
    position: Position | None


async def load_cart(store: PostgresEventStore, user_id: str, *, conn: Conn | None = None) -> Cart:
    """`user_id`'s current cart: the read model's row as a snapshot, then the stream's events
    after it (the row may lag; the tail makes it exact). A long-lived cart costs the same
    to load as a new one."""
    executor = conn if conn is not None else store.pool
    row = await executor.fetchrow(
        "SELECT items, currency, version FROM carts WHERE user_id = $1", user_id
    )
    snapshot = EMPTY if row is None else cart_of_row(dict(row))
    tail = await store.read_stream(stream_of(user_id), after_version=snapshot.version, conn=conn)
    return fold((event.data for event in tail), snapshot)


async def _backoff(attempt: int) -> None:
    """Full jitter, doubling from 2 ms up to 50 ms: racing writers spread out."""
    await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))


async def change_cart(
    store: PostgresEventStore, user_id: str, decide: Decision, *, metadata: Metadata
) -> Outcome:
    """Apply `decide` to `user_id`'s current cart and append what it records.

    Raises the decision's `DomainError`, or `ConcurrencyError` when the cart kept changing
    under us for `MAX_ATTEMPTS` tries (HTTP 409).
    """
    stream = stream_of(user_id)
    for attempt in range(MAX_ATTEMPTS):
        cart = await load_cart(store, user_id)
        events = decide(cart)
        if not events:
            return Outcome(cart, None)
        try:
            result = await store.append(stream, events, cart.version, metadata=metadata)
        except ConcurrencyError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            await _backoff(attempt)
            continue
        return Outcome(fold(events, cart), result.position)
    raise AssertionError("unreachable")


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
    metadata = Metadata(  # in the OrderPlaced's correlation and trace
        correlation_id=ctx.event.metadata.correlation_id,
        causation_id=str(ctx.event.event_id),
        actor=placed.user_id,
        service="cart",
        traceparent=context.traceparent.get() or ctx.event.metadata.traceparent,
    )
    event_ids = [checkout_event_id(placed.order_id)]
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with ctx.transaction() as conn:
                cart = await load_cart(store, placed.user_id, conn=conn)
                events = check_out(cart, placed.order_id, placed.lines)
                await store.append(
                    stream_of(placed.user_id), events, cart.version,
                    metadata=metadata, event_ids=event_ids, conn=conn,
                )  # fmt: skip
        except DuplicateEventError:
            log.info("order %s was checked out of the cart before", placed.order_id)
            return
        except ConcurrencyError:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            await _backoff(attempt)
            continue
        except DomainError as exc:
            raise Reject(f"order {placed.order_id}: {exc}") from exc
        return

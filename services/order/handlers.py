"""The write side of orders: place one from the caller's cart, and move it through its states.

Every change goes through `ORDER.execute`: load the order's stream, let the domain decide,
append at the version loaded; a lost race is decided again on fresh state, so two
concurrent "retry" clicks start one retry and the other sees the new status (409).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import asyncpg

from eventstore import NO_STREAM, Aggregate, EventStore, Executed, Metadata, Position
from eventstore.pg import Executor, Pool
from microshop.domain import ConflictError

from . import domain
from .carts import Carts
from .events import ORDER_STREAMS

__all__ = ["ORDER", "CartAlreadyOrdered", "Placed", "change_order", "place_order"]

ORDER = Aggregate(ORDER_STREAMS, domain.fold, None)
"""An order's stream folded into its state (None: no such order)."""


class CartAlreadyOrdered(ConflictError):
    """This very state of the cart was ordered before (another request, another key)."""

    code = "cart_already_ordered"

    def __init__(self, order_id: str | None) -> None:
        super().__init__("this cart has been ordered already", details={"order_id": order_id})


async def change_order(
    store: EventStore,
    order_id: str,
    decide: Callable[[domain.Order], list[domain.OrderEvent]],
    metadata: Metadata,
) -> Executed[domain.Order | None]:
    """Apply `decide` to the current order (`OrderNotFound` when there is none)."""
    return await ORDER.execute(store, order_id, domain.existing(decide), metadata=metadata)


# -- placing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """The order placed (or found again: `replayed`) and where its events landed."""

    order_id: str
    position: Position | None
    replayed: bool


async def _placed_by(
    executor: Executor, user_id: str, *, key: str | None = None, cart_version: int | None = None
) -> str | None:
    if key is not None:
        found = await executor.fetchval(
            "SELECT order_id FROM order_placements WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            key,
        )
    else:
        found = await executor.fetchval(
            "SELECT order_id FROM order_placements WHERE user_id = $1 AND cart_version = $2",
            user_id,
            cart_version,
        )
    return None if found is None else str(found)


async def place_order(
    store: EventStore,
    pool: Pool,
    carts: Carts,
    user_id: str,
    idempotency_key: str | None,
    metadata: Metadata,
) -> Placed:
    """An order from the caller's current cart at the catalog's current prices
    (`EmptyOrder` when there is none, `ProductUnavailable` when it holds a product no
    longer sold).

    The same Idempotency-Key from the same user gives the same order; the same cart
    state is never ordered twice (`CartAlreadyOrdered`). The placement row and the
    `OrderPlaced` append share one transaction: either both land or neither does.
    """
    if idempotency_key is not None:
        existing = await _placed_by(pool, user_id, key=idempotency_key)
        if existing is not None:
            return Placed(existing, None, replayed=True)
    cart = await carts.current()
    order_id = str(uuid.uuid4())
    events = domain.place(
        order_id, user_id, cart.lines, cart.currency or "", cart.version, cart.unavailable
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO order_placements (order_id, user_id, idempotency_key, cart_version)"
                " VALUES ($1, $2, $3, $4)",
                uuid.UUID(order_id),
                user_id,
                idempotency_key,
                cart.version,
            )
            appended = await store.append(
                ORDER_STREAMS.stream(order_id), events, NO_STREAM, metadata=metadata, conn=conn
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "order_placements_key":
            existing = await _placed_by(pool, user_id, key=idempotency_key)
            if existing is not None:  # a concurrent request with the same key won
                return Placed(existing, None, replayed=True)
        ordered = await _placed_by(pool, user_id, cart_version=cart.version)
        raise CartAlreadyOrdered(ordered) from None
    return Placed(order_id, appended.position, replayed=False)

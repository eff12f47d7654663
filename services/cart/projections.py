"""The `carts` read model: one row per user, folded with the domain's own `apply`.

Table `carts` (migrations/0004): `user_id` (the stream is `cart-{user_id}`), `items` (jsonb
list of `{product_id, name, unit_price, quantity, line_total}`, money as strings),
`total`, `currency` (null while empty), `version` (the stream version) and `updated_at`.
A cart emptied by events keeps its row, so its version stays visible. The prices here are
those the lines were added at (a fact of the stream); the API shows every line at the
catalog's current price instead (`catalog`, read model `cart_catalog`, registered here
too so every tool that loads the projections finds it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eventstore import Projection, RecordedEvent, Row, Snapshot, register_projection
from eventstore.pg import Executor

from .catalog import CATALOG
from .domain import EMPTY, Cart, Line, apply
from .domain.pricing import PricedLine
from .events import CART_STREAMS

__all__ = ["CARTS", "CATALOG", "CartsProjection", "line_json", "read_cart", "snapshot_of"]


def cart_of_row(row: Row) -> Cart:
    lines = tuple(
        Line(
            item["product_id"],
            item["name"],
            Decimal(item["unit_price"]),
            item["quantity"],
            item.get("sku"),  # rows written before carts recorded SKUs have none
        )
        for item in row["items"]
    )
    return Cart(lines, row["currency"], row["version"])


def line_json(line: Line | PricedLine) -> dict[str, Any]:
    """A cart line as the API and the `items` column show it."""
    return {
        "product_id": line.product_id,
        "sku": line.sku,
        "name": line.name,
        "unit_price": line.unit_price,
        "quantity": line.quantity,
        "line_total": line.line_total,
    }


def items_of(cart: Cart) -> list[dict[str, Any]]:
    """The cart's lines as the `items` column keeps them (at the prices they were added at)."""
    return [line_json(line) for line in cart.lines]


class CartsProjection(Projection):
    """Every cart's current lines and total, keyed by user id."""

    name = "carts"
    table = "carts"
    key = "user_id"
    categories = frozenset({CART_STREAMS.name})
    keyed_by_stream = True
    reads_metadata = False
    columns = ("user_id", "items", "total", "currency", "version", "updated_at")

    def key_of(self, event: RecordedEvent) -> str | None:
        return CART_STREAMS.id_of(event.stream_id) if CART_STREAMS.owns(event) else None

    def apply(self, row: Row | None, event: RecordedEvent) -> Row:
        cart = apply(EMPTY if row is None else cart_of_row(row), event.data)
        return {
            "user_id": CART_STREAMS.id_of(event.stream_id),
            "items": items_of(cart),
            "total": cart.total,
            "currency": cart.currency,
            "version": event.stream_version,
            "updated_at": event.recorded_at,
        }


CARTS = register_projection(CartsProjection())


async def read_cart(executor: Executor, user_id: str) -> Cart:
    """`user_id`'s cart as the read model has it (an empty cart when there is no row)."""
    row = await executor.fetchrow(
        "SELECT items, currency, version FROM carts WHERE user_id = $1", user_id
    )
    return EMPTY if row is None else cart_of_row(dict(row))


def snapshot_of(pool: Executor, user_id: str) -> Snapshot[Cart]:
    """The read model's row of `user_id`'s cart as the state to fold the stream's newer
    events on: a long-lived cart costs the same to load as a new one. Read on the write's
    own connection when it has one (`conn`), else on `pool`."""

    async def snapshot(conn: Any) -> tuple[Cart, int] | None:
        cart = await read_cart(conn if conn is not None else pool, user_id)
        return None if cart.version == 0 else (cart, cart.version)

    return snapshot

"""The `orders` read model: one row per order, its status derived by the domain's fold."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventstore import Dropped, EventStore, Projection, RecordedEvent, Row, register_projection
from eventstore.pg import parse_uuid

from . import domain
from .events import ORDER_STREAMS

__all__ = ["ORDERS", "OrdersProjection", "order_json", "row_from_log"]


def _lines(items: tuple[domain.OrderLine, ...]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": line.product_id,
            "name": line.name,
            "unit_price": _money(line.unit_price),
            "quantity": line.quantity,
            "line_total": _money(line.line_total),
        }
        for line in items
    ]


def _money(amount: Decimal) -> str:
    """`amount` with two decimals (as it mostly is already: then its text is cheaper
    than formatting it, which a rebuild does for every line of every order; a text with
    an exponent ends in it, never in a point and two digits)."""
    text = str(amount)
    return text if len(text) > 3 and text[-3] == "." else f"{amount:.2f}"


class OrdersProjection(Projection):
    """Table `orders`: one row per order, its status as the domain's fold derives it."""

    name = "orders"
    table = "orders"
    key = "id"
    categories = frozenset({ORDER_STREAMS.name})
    keyed_by_stream = True
    reads_metadata = False
    columns = (
        "id",
        "user_id",
        "status",
        "items",
        "total",
        "currency",
        "payment_round",
        "payment_attempts",
        "payment_id",
        "created_at",
        "updated_at",
        "version",
    )

    def key_of(self, event: RecordedEvent) -> Any | None:
        if not ORDER_STREAMS.owns(event) or isinstance(event.data, dict):
            return None
        return parse_uuid(ORDER_STREAMS.id_of(event.stream_id))

    def apply(self, row: Row | None, event: RecordedEvent) -> Row | None:
        order = domain.apply(None if row is None else _order(row), event.data)
        if order is None:
            return row
        created = event.recorded_at if row is None else row["created_at"]
        return _row(order, created, event)

    def fold_stream(self, events: list[RecordedEvent]) -> dict[Any, Row | None]:
        """The domain's fold over the whole stream, made a row once (not after every
        event): what `fold` gives, without a row-to-order round trip per event. The
        events are one stream's, so whether it is an order's is asked once."""
        if not events or not ORDER_STREAMS.owns(events[0].stream_id):
            return {}
        order: domain.Order | None = None
        created = last = None
        read = False  # an event of it is read at all (else no key either)
        apply = domain.apply
        for event in events:
            data = event.data
            if isinstance(data, (Dropped, dict)):
                continue  # what `key_of` and `fold` leave out
            read = True
            after = apply(order, data)
            if after is not None:
                if order is None:
                    created = event.recorded_at
                order, last = after, event
        if not read:
            return {}
        order_id = ORDER_STREAMS.id_of(events[0].stream_id)
        key = parse_uuid(order_id)
        if order is None or last is None or created is None:
            return {key: None}
        return {key: _row(order, created, last, key if order_id == order.id else None)}


def _row(
    order: domain.Order, created: datetime, event: RecordedEvent, id_: uuid.UUID | None = None
) -> Row:
    """The row of `order` as `event` left it (first made at `created`); `id_`: the
    order's id, when the caller has it parsed already."""
    return {
        "id": parse_uuid(order.id) if id_ is None else id_,
        "user_id": order.user_id,
        "status": order.status,
        "items": _lines(order.items),
        "total": order.total,
        "currency": order.currency,
        "payment_round": order.round,
        "payment_attempts": order.attempts,
        "payment_id": parse_uuid(order.payment_id) if order.payment_id else None,
        "created_at": created,
        "updated_at": event.recorded_at,
        "version": event.stream_version,
    }


def _order(row: Row) -> domain.Order:
    """The domain state a row stands for (the fold continues from it)."""
    lines = tuple(
        domain.OrderLine(
            i["product_id"],
            i["name"],
            Decimal(i["unit_price"]),
            int(i["quantity"]),
            Decimal(i["line_total"]),
        )
        for i in row["items"]
    )
    return domain.Order(
        str(row["id"]),
        row["user_id"],
        row["status"],
        lines,
        Decimal(row["total"]),
        row["currency"],
        row["payment_round"],
        row["payment_attempts"],
        str(row["payment_id"]) if row["payment_id"] else None,
    )


def order_json(row: Any) -> dict[str, Any]:
    """The public shape of an order (the `GET /api/orders/{id}` answer) from a read-model row."""
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "items": row["items"],
        "total": f"{row['total']:.2f}",
        "currency": row["currency"],
        "payment_attempts": row["payment_attempts"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


ORDERS = register_projection(OrdersProjection())


async def row_from_log(
    store: EventStore, order_id: str, *, as_of: datetime | None = None
) -> Row | None:
    """The order's row folded from its stream, as the read model will have it: the answer
    when the read model lags behind a write (or an order must be seen as the log has it).

    With `as_of` (time travel), the row as it was at that time: the same fold over the
    stream's events recorded at or before it (in version order, up to the first one
    recorded later, so the fold never skips a version); None if the order did not exist
    yet."""
    events = await store.read_stream(ORDER_STREAMS.stream(order_id))
    if as_of is not None:
        events = list(itertools.takewhile(lambda e: e.recorded_at <= as_of, events))
    rows: dict[Any, Row | None] = {}
    ORDERS.fold(rows, events)
    return rows.get(uuid.UUID(order_id))

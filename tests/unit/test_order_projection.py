"""The `orders` read model folds a whole stream at once (a rebuild) exactly as event by
event (a runner): the same row, including what it leaves out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from eventstore import Dropped, Metadata, RecordedEvent
from services.order import domain
from services.order.projections import ORDERS

ORDER_ID = "7d3c6f0e-8a55-4b3e-9d2f-3c1e2a4b5c6d"
LINES = [domain.OrderLine("p1", "Mug", Decimal("12.90"), 2, Decimal("25.80"))]
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def recorded(data: list[Any], stream: str = f"order-{ORDER_ID}") -> list[RecordedEvent]:
    return [
        RecordedEvent(
            n * 10,
            n,
            stream,
            n,
            uuid.uuid4(),
            type(d).__name__,
            1,
            d,
            Metadata(correlation_id="c"),
            T0 + timedelta(seconds=n),
        )
        for n, d in enumerate(data, start=1)
    ]


def story(*steps: str) -> list[Any]:
    """The order's events as the domain decides them, step by step."""
    events: list[Any] = list(domain.place(ORDER_ID, "u1", LINES, "EUR", 2))
    for step in steps:
        order = domain.fold(events)
        assert order is not None
        events += {
            "paid": lambda o: domain.payment_succeeded(o, o.round, 1, str(uuid.uuid4())),
            "failed": lambda o: domain.payment_failed(o, o.round, 3, "declined"),
            "retry": domain.request_retry,
            "cancel": domain.cancel,
        }[step](order)
    return events


def one_by_one(events: list[RecordedEvent]) -> dict[Any, Any]:
    state: dict[Any, Any] = {}
    ORDERS.fold(state, events)
    return state


STORIES = {
    "placed": story(),
    "paid": story("paid"),
    "failed, retried, paid": story("failed", "retry", "paid"),
    "failed, cancelled": story("failed", "cancel"),
    "a foreign event in between": [*story("failed"), {"unknown": "type"}],
    "an event upcast into nothing": [*story(), Dropped("Gone", 1), *story("paid")[1:]],
    "a foreign event last": [*story("paid"), {"unknown": "type"}],
    "an outcome before the order": [
        domain.PaymentFailed(ORDER_ID, 1, 3, "declined"),
        *story("cancel"),
    ],
    "only an outcome": [domain.PaymentFailed(ORDER_ID, 1, 3, "declined")],
    "only foreign events": [{"unknown": "type"}],
}


@pytest.mark.parametrize("name", STORIES)
def test_folding_a_whole_stream_equals_folding_event_by_event(name: str) -> None:
    events = recorded(STORIES[name])
    assert ORDERS.fold_stream(events) == one_by_one(events)


def test_a_whole_stream_makes_the_row_of_its_last_event() -> None:
    events = recorded(story("failed", "retry", "paid"))
    [(key, row)] = ORDERS.fold_stream(events).items()
    assert row is not None
    assert key == uuid.UUID(ORDER_ID)
    assert row["status"] == domain.PAID
    assert row["created_at"] == T0 + timedelta(seconds=1)
    assert row["updated_at"] == T0 + timedelta(seconds=4)
    assert row["version"] == 4 and row["payment_attempts"] == 4


def test_events_of_another_category_make_no_row() -> None:
    assert ORDERS.fold_stream(recorded(story(), stream="cart-x")) == {}


@pytest.mark.parametrize(
    "amount",
    ["25.80", "5", "0.5", "12.345", "-0.00", "1E+2", "1.5E-7", "1.00E+3", "0E-8", "1.2E+10"],
)
def test_money_in_the_rows_has_two_decimals_whatever_the_event_held(amount: str) -> None:
    line = domain.OrderLine("p1", "Mug", Decimal(amount), 1, Decimal(amount))
    placed = domain.OrderPlaced(ORDER_ID, "u1", (line,), Decimal(amount), "EUR", 1)
    [row] = ORDERS.fold_stream(recorded([placed])).values()
    assert row is not None
    [item] = row["items"]
    assert item["unit_price"] == item["line_total"] == f"{Decimal(amount):.2f}"

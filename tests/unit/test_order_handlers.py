"""The order's status machine through its write path, on the in-memory store."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from eventstore import NO_STREAM, InMemoryEventStore, Metadata
from services.order import domain
from services.order import events as _order_events  # noqa: F401  (registers the types)
from services.order.handlers import ORDER, change_order
from tests.samples import RacingStore

META = Metadata(actor="user-1", service="order")
LINES = [domain.OrderLine("p1", "Mug", Decimal("12.50"), 2, Decimal("25.00"))]


async def placed(store: InMemoryEventStore) -> str:
    order_id = str(uuid.uuid4())
    events = domain.place(order_id, "user-1", LINES, "EUR", 1)
    await store.append(ORDER.stream(order_id), events, NO_STREAM)
    return order_id


async def test_a_paid_order_records_one_payment_and_is_final() -> None:
    store = InMemoryEventStore()
    order_id = await placed(store)
    paid = await change_order(
        store, order_id, lambda o: domain.payment_succeeded(o, 1, 1, "pay-1"), META
    )
    assert paid.state is not None and paid.state.status == domain.PAID
    again = await change_order(
        store, order_id, lambda o: domain.payment_succeeded(o, 1, 2, "pay-2"), META
    )
    assert again.position is None  # a repeated report records nothing
    with pytest.raises(domain.IllegalTransition) as refused:
        await change_order(store, order_id, domain.cancel, META)
    assert refused.value.details == {"status": domain.PAID}
    types = [e.event_type for e in await store.read_stream(ORDER.stream(order_id))]
    assert types == ["OrderPlaced", "PaymentSucceeded"]


async def test_an_unknown_order_is_not_found() -> None:
    with pytest.raises(domain.OrderNotFound):
        await change_order(InMemoryEventStore(), str(uuid.uuid4()), domain.cancel, META)


async def test_two_retry_clicks_start_one_retry() -> None:
    store = RacingStore()
    order_id = await placed(store)
    await change_order(store, order_id, lambda o: domain.payment_failed(o, 1, 3, "declined"), META)
    answers = await asyncio.gather(
        change_order(store, order_id, domain.request_retry, META),
        change_order(store, order_id, domain.request_retry, META),
        return_exceptions=True,
    )
    assert store.lost >= 1  # the clicks raced; the loser decided again on the new state
    refused = [a for a in answers if isinstance(a, domain.IllegalTransition)]
    assert len(refused) == 1 and refused[0].status == domain.PENDING_PAYMENT
    retries = [
        e
        for e in await store.read_stream(ORDER.stream(order_id))
        if e.event_type == "PaymentRetryRequested"
    ]
    assert len(retries) == 1 and retries[0].data.round == 2


async def test_a_cancellation_racing_a_payment_report_leaves_one_outcome() -> None:
    store = RacingStore()
    order_id = await placed(store)
    answers = await asyncio.gather(
        change_order(store, order_id, domain.cancel, META),
        change_order(store, order_id, lambda o: domain.payment_succeeded(o, 1, 1, "p"), META),
        return_exceptions=True,
    )
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], domain.IllegalTransition)
    final = (await ORDER.load(store, order_id)).state
    assert final is not None and final.status in domain.FINAL

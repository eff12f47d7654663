"""Charging on the in-memory store: at most once per order, whatever arrives concurrently."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from eventstore import InMemoryEventStore
from services.payment import events as _payment_events  # noqa: F401  (registers the types)
from services.payment.domain import (
    Approved,
    AttemptMismatch,
    Declined,
    NotCharged,
    PaymentRequest,
    PaymentStatus,
    ProviderOutcome,
)
from services.payment.handlers import PAYMENT, pay, refund
from tests.samples import RacingStore


class Provider:
    """A payment provider that approves (or declines) and counts how often it was asked."""

    def __init__(self, *, approve: bool = True, pause: float = 0.0) -> None:
        self.approve = approve
        self.pause = pause
        self.asked = 0

    async def charge(self) -> ProviderOutcome:
        self.asked += 1
        await asyncio.sleep(self.pause)  # concurrent requests overlap here
        return Approved(uuid.uuid4()) if self.approve else Declined("no funds")


def request(order_id: uuid.UUID, attempt: int = 1, amount: str = "25.00") -> PaymentRequest:
    return PaymentRequest(
        order_id, round=1, attempt=attempt, amount=Decimal(amount), currency="EUR"
    )


async def test_a_charge_is_recorded_and_a_replay_answers_from_the_record() -> None:
    store, provider, order_id = InMemoryEventStore(), Provider(), uuid.uuid4()
    first = await pay(store, provider, request(order_id))
    assert first.result.status is PaymentStatus.CHARGED and first.recorded
    assert first.charge_event_id is not None
    again = await pay(store, provider, request(order_id))
    assert again.result == first.result and not again.recorded
    assert again.charge_event_id == first.charge_event_id
    assert provider.asked == 1
    with pytest.raises(AttemptMismatch):
        await pay(store, provider, request(order_id, amount="99.00"))


async def test_concurrent_attempts_charge_an_order_once() -> None:
    """Copies of one attempt and other attempts, all asking the provider before any of them
    appends: one charge lands; the losers decide again with their outcome and book nothing."""
    store, provider, order_id = RacingStore(), Provider(pause=0.01), uuid.uuid4()
    same = [pay(store, provider, request(order_id, attempt=1)) for _ in range(4)]
    other = [pay(store, provider, request(order_id, attempt=n)) for n in range(2, 6)]
    answers = await asyncio.gather(*same, *other)
    assert provider.asked == 8 and store.lost > 0  # every request was charged; they raced
    charged = {a.result.payment_id for a in answers if a.result.status is PaymentStatus.CHARGED}
    already = [a for a in answers if a.result.status is PaymentStatus.ALREADY_CHARGED]
    assert len(charged) == 1  # one attempt charged; every other answer names that charge
    assert already and {a.result.payment_id for a in already} <= charged
    assert sum(a.recorded for a in answers) == 1
    state = (await PAYMENT.load(store, order_id)).state
    assert state is not None and state.charge is not None
    assert state.charge.payment_id in charged
    recorded = [e.event_type for e in await store.read_stream(PAYMENT.stream(order_id))]
    assert recorded == ["PaymentAttempted", "PaymentCharged"]


async def test_copies_of_one_attempt_answer_alike() -> None:
    store, provider, order_id = RacingStore(), Provider(pause=0.01), uuid.uuid4()
    answers = await asyncio.gather(*(pay(store, provider, request(order_id)) for _ in range(5)))
    assert {a.result for a in answers} == {answers[0].result}
    assert answers[0].result.status is PaymentStatus.CHARGED
    assert {a.charge_event_id for a in answers} == {answers[0].charge_event_id}
    assert len(await store.read_stream(PAYMENT.stream(order_id))) == 2


async def test_concurrent_declines_all_land() -> None:
    """Losing a race is no failure: each decline is decided again until it is recorded."""
    store, order_id = RacingStore(), uuid.uuid4()
    provider = Provider(approve=False, pause=0.01)
    attempts = range(1, 31)
    answers = await asyncio.gather(*(pay(store, provider, request(order_id, n)) for n in attempts))
    assert {a.result.status for a in answers} == {PaymentStatus.DECLINED} and store.lost > 0
    state = (await PAYMENT.load(store, order_id)).state
    assert state is not None
    assert sorted(a.attempt for a in state.attempts) == list(attempts)


async def test_a_decline_is_recorded_per_attempt() -> None:
    store, provider, order_id = InMemoryEventStore(), Provider(approve=False), uuid.uuid4()
    answer = await pay(store, provider, request(order_id))
    assert answer.result.status is PaymentStatus.DECLINED and answer.charge_event_id is None
    assert [e.event_type for e in await store.read_stream(PAYMENT.stream(order_id))] == [
        "PaymentAttempted",
        "PaymentAttemptFailed",
    ]


async def test_a_charge_is_refunded_once() -> None:
    store, order_id = InMemoryEventStore(), uuid.uuid4()
    paid = await pay(store, Provider(), request(order_id))
    assert paid.result.payment_id is not None
    assert await refund(store, order_id, paid.result.payment_id, "cancelled") is True
    assert await refund(store, order_id, paid.result.payment_id, "cancelled") is False
    with pytest.raises(NotCharged):
        await refund(store, order_id, uuid.uuid4(), "cancelled")
    replay = await pay(store, Provider(), request(order_id))
    assert replay.refunded

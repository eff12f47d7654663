"""The write side: an order's payment stream, decided on by the pure domain.

`pay` is the one code path that charges; `refund` the one that gives money back.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import msgspec

from eventstore import Aggregate, EventStore, Metadata, RecordedEvent, Retry

from . import domain
from .domain import Payment, PaymentCharged, PaymentRequest, PaymentResult, PaymentStatus
from .events import PAYMENT_STREAMS
from .orders import OrderService, Report
from .simulator import PaymentProvider

__all__ = ["PAYMENT", "REFUND_REASON", "Paid", "pay", "refund", "report_charge"]

log = logging.getLogger(__name__)

PAYMENT = Aggregate(PAYMENT_STREAMS, domain.fold, None, retry=Retry(attempts=64), remembers=True)
"""An order's payment stream (`payment-{order_id}`) folded (None: no payment events yet).

Every lost race means another request for the same order got its events in, so the
retry policy bounds the number of concurrent attempts one order can have, not the time:
up to 64 of them all land (each loser decides again, with the provider's same outcome)."""

REFUND_REASON = "order cancelled while its payment ran"


@dataclasses.dataclass(frozen=True, slots=True)
class Paid:
    """What `pay` answered, and about the charge it names (if any): the id of the event
    recording it (the cause of the report to order-service) and whether it was refunded."""

    result: PaymentResult
    charge_event_id: uuid.UUID | None = None
    refunded: bool = False
    recorded: bool = False
    """True when this call appended the attempt (else the answer came from the record)."""


def _charge_event_id(recorded: tuple[RecordedEvent, ...]) -> uuid.UUID | None:
    return next((e.event_id for e in recorded if isinstance(e.data, PaymentCharged)), None)


def _answer(
    result: PaymentResult, state: Payment | None, recorded: tuple[RecordedEvent, ...]
) -> Paid:
    """`Paid` for an answer the recorded state gave (nothing new was appended)."""
    if result.status is PaymentStatus.DECLINED or state is None:
        return Paid(result)
    return Paid(result, charge_event_id=_charge_event_id(recorded), refunded=state.refunded)


async def pay(
    store: EventStore,
    provider: PaymentProvider,
    request: PaymentRequest,
    *,
    metadata: Metadata | None = None,
) -> Paid:
    """Answer a payment request, charging through `provider` at most once per order.

    It answers settled requests (replays, orders already charged) from the stream without
    asking the provider. Otherwise it asks the provider once, then appends the attempt and
    its outcome in one append at the version it loaded. Losing that race means someone
    else appended meanwhile: it decides again with the same outcome (the dice are not
    rolled twice), which turns a charge that lost to another charge into
    `already_charged` and records nothing for it.

    Raises `AttemptMismatch` for a known attempt with another amount or currency, and
    `ConcurrencyError` after the retry policy's lost races.
    """
    loaded = await PAYMENT.load(store, request.order_id)
    answer = domain.settled(loaded.state, request)
    if answer is not None:
        return _answer(answer, loaded.state, loaded.recorded)
    outcome = await provider.charge()
    decisions: list[domain.Decision] = []

    def decide(state: Payment | None) -> tuple[domain.PaymentEvent, ...]:
        decisions.append(domain.decide(state, request, outcome))
        return decisions[-1].events

    done = await PAYMENT.execute(store, request.order_id, decide, metadata=metadata)
    result = decisions[-1].result
    if done.appended is None:
        return _answer(result, done.before.state, done.before.recorded)
    charge_event_id = None
    if result.status is PaymentStatus.CHARGED:
        charge_event_id = done.appended.event_ids[-1]
    return Paid(result, charge_event_id=charge_event_id, recorded=True)


async def refund(
    store: EventStore,
    order_id: uuid.UUID,
    payment_id: uuid.UUID,
    reason: str,
    *,
    metadata: Metadata | None = None,
) -> bool:
    """Record the refund of charge `payment_id`; False when it was refunded before.

    Raises `NotCharged` when the order has no such charge.
    """
    done = await PAYMENT.execute(
        store, order_id, lambda state: domain.refund(state, payment_id, reason), metadata=metadata
    )
    return done.appended is not None


async def report_charge(
    store: EventStore, orders: OrderService, paid: Paid, *, metadata: Metadata
) -> tuple[Report, bool]:
    """Tell order-service about the charge `paid` names (best effort). When it says the
    order was cancelled meanwhile, refund the charge: the compensation of that race.
    (How order-service took the report, whether this call recorded the refund.)"""
    result = paid.result
    assert result.payment_id is not None, "only a charge is reported"
    causation_id = str(paid.charge_event_id) if paid.charge_event_id else None
    report = await orders.payment_succeeded(result, causation_id=causation_id)
    if report is not Report.ORDER_CANCELLED:
        return report, False
    return report, await _refund_cancelled(store, paid, causation_id, metadata)


async def _refund_cancelled(
    store: EventStore, paid: Paid, causation_id: str | None, metadata: Metadata
) -> bool:
    result = paid.result
    assert result.payment_id is not None
    try:
        refunded = await refund(
            store,
            result.order_id,
            result.payment_id,
            REFUND_REASON,
            metadata=msgspec.structs.replace(metadata, causation_id=causation_id),
        )
    except domain.NotCharged:  # the report named this very charge: a broken stream
        log.error("order %s has no charge %s to refund", result.order_id, result.payment_id)
        return False
    if refunded:
        log.warning(
            "order %s was cancelled while its payment ran: refunded payment %s",
            result.order_id,
            result.payment_id,
        )
    return refunded

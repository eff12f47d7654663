"""The write side: load an order's payment stream, let the domain decide, append.

`pay` is the one code path that charges. It answers settled requests (replays, orders
already charged) from the stream without asking the provider. Otherwise it asks the
provider once, then appends the attempt and its outcome in one append at the version it
loaded. Losing that race means someone else appended meanwhile: it reloads and decides
again with the same outcome (the dice are not rolled twice), which turns a charge that
lost to another charge into `already_charged` and records nothing for it.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import msgspec

from eventstore import ConcurrencyError, EventStore, Metadata, RecordedEvent

from . import domain
from .domain import Payment, PaymentCharged, PaymentRequest, PaymentResult, PaymentStatus
from .events import stream_id
from .orders import OrderService, Report
from .simulator import PaymentProvider

__all__ = [
    "APPEND_ATTEMPTS",
    "REFUND_REASON",
    "Loaded",
    "Paid",
    "load_payment",
    "pay",
    "refund",
    "report_charge",
]

log = logging.getLogger(__name__)

APPEND_ATTEMPTS = 64
"""How often `pay` decides again after losing the race for the stream version. Every lost
race means another request for the same order got its events in, so this bounds the number
of concurrent attempts one order can have, not the time spent."""

REFUND_REASON = "order cancelled while its payment ran"


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    """An order's payment state, its stream version and the id of its `PaymentCharged`."""

    state: Payment | None
    version: int
    charge_event_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Paid:
    """What `pay` answered, and about the charge it names (if any): the id of the event
    recording it (the cause of the report to order-service) and whether it was refunded."""

    result: PaymentResult
    charge_event_id: uuid.UUID | None = None
    refunded: bool = False
    recorded: bool = False
    """True when this call appended the attempt (else the answer came from the record)."""


def loaded_from(recorded: list[RecordedEvent]) -> Loaded:
    state = domain.fold(e.data for e in recorded)
    charge = next((e.event_id for e in recorded if isinstance(e.data, PaymentCharged)), None)
    return Loaded(state, recorded[-1].stream_version if recorded else 0, charge)


async def load_payment(store: EventStore, order_id: uuid.UUID) -> Loaded:
    """The payment state of an order (None, version 0: no payment events yet)."""
    return loaded_from(await store.read_stream(stream_id(order_id)))


def _answer(result: PaymentResult, loaded: Loaded) -> Paid:
    """`Paid` for an answer the recorded state gave (nothing new was appended)."""
    state = loaded.state
    if result.status is PaymentStatus.DECLINED or state is None:
        return Paid(result)
    return Paid(result, charge_event_id=loaded.charge_event_id, refunded=state.refunded)


async def pay(
    store: EventStore,
    provider: PaymentProvider,
    request: PaymentRequest,
    *,
    metadata: Metadata | None = None,
) -> Paid:
    """Answer a payment request, charging through `provider` at most once per order.

    Raises `AttemptMismatch` for a known attempt with another amount or currency, and
    `ConcurrencyError` after `APPEND_ATTEMPTS` lost races.
    """
    loaded = await load_payment(store, request.order_id)
    answer = domain.settled(loaded.state, request)
    if answer is not None:
        return _answer(answer, loaded)
    outcome = await provider.charge()
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        decision = domain.decide(loaded.state, request, outcome)
        if not decision.events:
            return _answer(decision.result, loaded)
        try:
            appended = await store.append(
                stream_id(request.order_id), decision.events, loaded.version, metadata=metadata
            )
        except ConcurrencyError:
            if attempt == APPEND_ATTEMPTS:
                raise
            loaded = await load_payment(store, request.order_id)
            continue
        charge_event_id = None
        if decision.result.status is PaymentStatus.CHARGED:
            charge_event_id = appended.event_ids[-1]
        return Paid(decision.result, charge_event_id=charge_event_id, recorded=True)
    raise AssertionError("unreachable")


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
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        loaded = await load_payment(store, order_id)
        events = domain.refund(loaded.state, payment_id, reason)
        if not events:
            return False
        try:
            await store.append(stream_id(order_id), events, loaded.version, metadata=metadata)
        except ConcurrencyError:
            if attempt == APPEND_ATTEMPTS:
                raise
            continue
        return True
    raise AssertionError("unreachable")


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
            store, result.order_id, result.payment_id, REFUND_REASON,
            metadata=msgspec.structs.replace(metadata, causation_id=causation_id),
        )  # fmt: skip
    except domain.NotCharged:  # the report named this very charge: a broken stream
        log.error("order %s has no charge %s to refund", result.order_id, result.payment_id)
        return False
    if refunded:
        log.warning("order %s was cancelled while its payment ran: refunded payment %s",
                    result.order_id, result.payment_id)  # fmt: skip
    return refunded

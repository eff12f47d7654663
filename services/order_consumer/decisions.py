"""What order-consumer does next for one delivery, decided from what it has seen so far.

Pure (no I/O): the driver (`handlers.PaymentDriver`) asks `next_step` what to do, does it,
and feeds back what it saw, until the step is final. Each delivery of `OrderPlaced` or
`PaymentRetryRequested` is attempt N of its payment round:

1. It first sees the order (`SawOrder`). Gone: park the message. Not waiting for this
   round's payment: nothing to do. Past the attempt budget: look for a charge of this
   round (the last attempt may have charged while both reports were lost), else pay.
2. After paying (`SawPayment`): a charge payment-service reported itself is done; one it
   did not report is reported to order-service; `already_charged` (an earlier delivery
   charged) means finding that charge first; a decline is retried later, or reported as
   the round's failure on the last attempt.
3. After looking for a charge (`SawCharge`): report it, or when there is none, fail the
   round (budget spent) or retry later (payment-service said there was one).
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "Charge",
    "Ending",
    "FindCharge",
    "OrderView",
    "Park",
    "Pay",
    "PaymentAnswer",
    "ReportFailure",
    "ReportSuccess",
    "RetryLater",
    "SawCharge",
    "SawOrder",
    "SawPayment",
    "Stop",
    "next_step",
]

PENDING_PAYMENT = "PENDING_PAYMENT"


@dataclasses.dataclass(frozen=True, slots=True)
class OrderView:
    """The order as order-service's internal API shows it."""

    status: str
    round: int


@dataclasses.dataclass(frozen=True, slots=True)
class Charge:
    """A successful attempt, as payment-service records it."""

    payment_id: str
    round: int
    attempt: int


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """payment-service's answer to one attempt."""

    status: str  # "charged", "already_charged" or "declined"
    charge: Charge | None = None
    reported: bool = False  # payment-service told order-service of the charge itself
    reason: str | None = None


# -- what has been seen --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SawOrder:
    """order-service's answer: the order, or None when it has no such order."""

    order: OrderView | None


@dataclasses.dataclass(frozen=True, slots=True)
class SawPayment:
    """payment-service's answer to this delivery's attempt."""

    answer: PaymentAnswer


@dataclasses.dataclass(frozen=True, slots=True)
class SawCharge:
    """The charge found (or not), looked for in any round or in this round only."""

    charge: Charge | None
    any_round: bool


Seen = SawOrder | SawPayment | SawCharge


# -- what to do ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Ending:
    """A step that ends the delivery's work, and why."""

    why: str


class Stop(Ending):
    """Nothing (more) to do for this delivery."""


class Park(Ending):
    """The message can never be handled: park it."""


class RetryLater(Ending):
    """Deliver the message again after the consumer's backoff."""


@dataclasses.dataclass(frozen=True, slots=True)
class Pay:
    """Ask payment-service for this delivery's attempt."""


@dataclasses.dataclass(frozen=True, slots=True)
class FindCharge:
    """Ask payment-service for the order's charge: of any round, or of this round only."""

    any_round: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReportSuccess:
    """Tell order-service the order is paid by `charge`."""

    charge: Charge


@dataclasses.dataclass(frozen=True, slots=True)
class ReportFailure:
    """Tell order-service the round failed after `attempts` attempts."""

    attempts: int


Step = Stop | Park | RetryLater | Pay | FindCharge | ReportSuccess | ReportFailure


def next_step(seen: Seen, round_: int, attempt: int, budget: int) -> Step:
    """The next step of attempt `attempt` (of `budget`) of payment round `round_`."""
    if isinstance(seen, SawOrder):
        order = seen.order
        if order is None:
            return Park("the order does not exist")
        if order.status != PENDING_PAYMENT or order.round != round_:
            return Stop("paid, cancelled, failed already, or a newer round runs")
        if attempt > budget:  # the budget was spent; only the report is missing...
            return FindCharge(any_round=False)  # ...unless the last attempt charged
        return Pay()
    if isinstance(seen, SawPayment):
        answer = seen.answer
        if answer.status == "charged" and answer.reported:
            return Stop("payment-service told order-service itself")
        if answer.status == "already_charged":
            return FindCharge(any_round=True)  # the answer echoes this attempt, not that one
        if answer.status == "charged":
            assert answer.charge is not None
            return ReportSuccess(answer.charge)
        if attempt >= budget:
            return ReportFailure(attempt)
        return RetryLater(f"attempt {attempt} declined: {answer.reason}")
    if seen.charge is not None:
        return ReportSuccess(seen.charge)
    if seen.any_round:
        return RetryLater("no charge found although payment-service reported one")
    return ReportFailure(budget)

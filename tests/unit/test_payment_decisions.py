"""order-consumer's choices, given what it has seen, for attempt N of a budget of 3."""

from __future__ import annotations

import pytest

from services.order_consumer.decisions import (
    Charge,
    FindCharge,
    OrderView,
    Park,
    Pay,
    PaymentAnswer,
    ReportFailure,
    ReportSuccess,
    RetryLater,
    SawCharge,
    SawOrder,
    SawPayment,
    Stop,
    next_step,
)

BUDGET = 3
PENDING = OrderView("PENDING_PAYMENT", round=1)
CHARGE = Charge("pay-1", round=1, attempt=2)


def step(seen: SawOrder | SawPayment | SawCharge, attempt: int = 1, round_: int = 1) -> object:
    return next_step(seen, round_, attempt, BUDGET)


def test_a_pending_order_of_this_round_is_paid() -> None:
    assert step(SawOrder(PENDING)) == Pay()
    assert step(SawOrder(PENDING), attempt=BUDGET) == Pay()


def test_an_order_that_does_not_exist_is_parked() -> None:
    assert isinstance(step(SawOrder(None)), Park)


@pytest.mark.parametrize(
    "order",
    [
        OrderView("PAID", 1),
        OrderView("CANCELLED", 1),
        OrderView("PAYMENT_FAILED", 1),
        OrderView("PENDING_PAYMENT", 2),  # a newer round runs: this delivery is stale
    ],
)
def test_an_order_not_waiting_for_this_rounds_payment_needs_nothing(order: OrderView) -> None:
    assert isinstance(step(SawOrder(order)), Stop)


def test_past_the_budget_it_looks_for_this_rounds_charge_instead_of_paying() -> None:
    assert step(SawOrder(PENDING), attempt=BUDGET + 1) == FindCharge(any_round=False)


def test_a_charge_payment_service_reported_itself_is_done() -> None:
    answer = PaymentAnswer("charged", CHARGE, reported=True)
    assert isinstance(step(SawPayment(answer)), Stop)


def test_a_charge_not_yet_reported_is_reported() -> None:
    answer = PaymentAnswer("charged", CHARGE, reported=False)
    assert step(SawPayment(answer)) == ReportSuccess(CHARGE)


def test_already_charged_means_finding_the_charge_that_was_made() -> None:
    answer = PaymentAnswer("already_charged", Charge("echo", 1, 1))
    assert step(SawPayment(answer)) == FindCharge(any_round=True)


def test_a_decline_is_retried_until_the_last_attempt_then_the_round_fails() -> None:
    declined = SawPayment(PaymentAnswer("declined", reason="card declined"))
    assert isinstance(step(declined, attempt=1), RetryLater)
    assert isinstance(step(declined, attempt=BUDGET - 1), RetryLater)
    assert step(declined, attempt=BUDGET) == ReportFailure(BUDGET)


def test_a_charge_found_is_reported_whichever_way_it_was_looked_for() -> None:
    assert step(SawCharge(CHARGE, any_round=True)) == ReportSuccess(CHARGE)
    assert step(SawCharge(CHARGE, any_round=False), attempt=BUDGET + 1) == ReportSuccess(CHARGE)


def test_no_charge_of_the_round_past_the_budget_fails_the_round() -> None:
    assert step(SawCharge(None, any_round=False), attempt=BUDGET + 2) == ReportFailure(BUDGET)


def test_no_charge_although_one_was_reported_is_looked_for_again_later() -> None:
    assert isinstance(step(SawCharge(None, any_round=True)), RetryLater)

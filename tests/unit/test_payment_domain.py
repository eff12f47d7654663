"""An order's payment as given/when/then on events: no I/O, no dice, no framework."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from services.payment.domain import (
    Approved,
    Attempt,
    AttemptMismatch,
    AttemptStatus,
    Charge,
    Decision,
    Declined,
    InvalidValue,
    NotCharged,
    Payment,
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentEvent,
    PaymentRefunded,
    PaymentRequest,
    PaymentResult,
    PaymentStatus,
    decide,
    fold,
    refund,
    settled,
)
from services.payment.domain.rules import parse_amount, valid_currency

OID = uuid.UUID("3f9d2b7c-1e4a-4c55-8d0e-6a7b8c9d0e1f")
PAY_1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
PAY_2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
AMOUNT = Decimal("12.34")
DECLINED = "card declined (simulated)"


def given(*events: PaymentEvent) -> Payment | None:
    return fold(events)


def request(round_: int = 1, attempt: int = 1, amount: str = "12.34") -> PaymentRequest:
    return PaymentRequest(OID, round_, attempt, Decimal(amount), "EUR")


def attempted(round_: int = 1, attempt: int = 1) -> PaymentAttempted:
    return PaymentAttempted(OID, round_, attempt, AMOUNT, "EUR")


def charged(round_: int = 1, attempt: int = 1, payment_id: uuid.UUID = PAY_1) -> PaymentCharged:
    return PaymentCharged(OID, round_, attempt, payment_id, AMOUNT, "EUR")


def failed(round_: int = 1, attempt: int = 1) -> PaymentAttemptFailed:
    return PaymentAttemptFailed(OID, round_, attempt, DECLINED)


# -- the fold ----------------------------------------------------------------------------


def test_no_events_is_no_payment() -> None:
    assert given() is None


def test_the_fold_keeps_attempts_in_order_and_the_charge() -> None:
    state = given(attempted(1, 1), failed(1, 1), attempted(2, 1), charged(2, 1))
    assert state == Payment(
        OID,
        attempts=(
            Attempt(1, 1, AMOUNT, "EUR", AttemptStatus.DECLINED, reason=DECLINED),
            Attempt(2, 1, AMOUNT, "EUR", AttemptStatus.CHARGED, payment_id=PAY_1),
        ),
        charge=Charge(PAY_1, 2, 1, AMOUNT, "EUR"),
    )


def test_a_refund_keeps_the_charge() -> None:
    state = given(attempted(), charged(), PaymentRefunded(OID, PAY_1, "order cancelled"))
    assert state is not None
    assert state.refunded
    assert state.charge == Charge(PAY_1, 1, 1, AMOUNT, "EUR")


@pytest.mark.parametrize(
    "events",
    [
        [charged()],  # an outcome without its attempt
        [attempted(), failed(1, 2)],  # the outcome of another attempt
        [attempted(), failed(), charged()],  # two outcomes
        [attempted(), failed(), attempted()],  # the same attempt twice
        [PaymentRefunded(OID, PAY_1, "x")],  # a refund of nothing
    ],
)
def test_a_broken_stream_is_refused(events: list[PaymentEvent]) -> None:
    with pytest.raises(ValueError, match=r"attempt|outcome|before"):
        fold(events)


# -- paying ------------------------------------------------------------------------------


def test_a_first_approved_attempt_records_the_attempt_and_the_charge() -> None:
    assert decide(given(), request(), Approved(PAY_1)) == Decision(
        PaymentResult(PaymentStatus.CHARGED, OID, 1, 1, PAY_1),
        (attempted(), charged()),
    )


def test_a_declined_attempt_records_the_attempt_and_the_failure() -> None:
    state = given(attempted(1, 1), failed(1, 1))
    assert decide(state, request(1, 2), Declined(DECLINED)) == Decision(
        PaymentResult(PaymentStatus.DECLINED, OID, 1, 2, reason=DECLINED),
        (attempted(1, 2), failed(1, 2)),
    )


def test_a_new_attempt_after_failures_can_charge() -> None:
    state = given(attempted(1, 1), failed(1, 1), attempted(1, 2), failed(1, 2))
    decision = decide(state, request(2, 1), Approved(PAY_2))
    assert decision.result == PaymentResult(PaymentStatus.CHARGED, OID, 2, 1, PAY_2)
    assert decision.events == (attempted(2, 1), charged(2, 1, PAY_2))


def test_an_unsettled_request_needs_the_provider() -> None:
    assert settled(given(), request()) is None
    assert settled(given(attempted(), failed()), request(1, 2)) is None


# -- idempotent replay: the recorded answer, nothing new --------------------------------


@pytest.mark.parametrize("outcome", [Approved(PAY_2), Declined("other")])
def test_a_charged_attempt_again_is_answered_as_recorded(outcome: Approved | Declined) -> None:
    state = given(attempted(), charged())
    recorded = PaymentResult(PaymentStatus.CHARGED, OID, 1, 1, PAY_1)
    assert settled(state, request()) == recorded
    assert decide(state, request(), outcome) == Decision(recorded)


@pytest.mark.parametrize("outcome", [Approved(PAY_2), Declined("other")])
def test_a_declined_attempt_again_is_answered_as_recorded(outcome: Approved | Declined) -> None:
    state = given(attempted(), failed())
    recorded = PaymentResult(PaymentStatus.DECLINED, OID, 1, 1, reason=DECLINED)
    assert settled(state, request()) == recorded
    assert decide(state, request(), outcome) == Decision(recorded)


def test_a_declined_attempt_again_stays_declined_after_another_attempt_charged() -> None:
    state = given(attempted(1, 1), failed(1, 1), attempted(1, 2), charged(1, 2))
    assert settled(state, request(1, 1)) == PaymentResult(
        PaymentStatus.DECLINED, OID, 1, 1, reason=DECLINED
    )


def test_amounts_are_compared_as_values() -> None:
    state = given(attempted(), charged())
    assert settled(state, request(amount="12.340"))
    assert settled(state, request(amount="12.340")) == settled(state, request())


@pytest.mark.parametrize(
    "changed", [request(amount="99.00"), PaymentRequest(OID, 1, 1, AMOUNT, "USD")]
)
def test_a_known_attempt_with_other_terms_is_refused(changed: PaymentRequest) -> None:
    state = given(attempted(), failed())
    with pytest.raises(AttemptMismatch):
        settled(state, changed)
    with pytest.raises(AttemptMismatch):
        decide(state, changed, Approved(PAY_2))


# -- never charged twice -----------------------------------------------------------------


def test_another_attempt_of_a_charged_order_is_already_charged_and_records_nothing() -> None:
    state = given(attempted(1, 1), charged(1, 1))
    already = PaymentResult(PaymentStatus.ALREADY_CHARGED, OID, 2, 3, PAY_1)
    assert settled(state, request(2, 3)) == already
    # the provider's approval of the loser of a race is never booked
    assert decide(state, request(2, 3), Approved(PAY_2)) == Decision(already)
    assert decide(state, request(2, 3), Declined(DECLINED)) == Decision(already)


def test_a_refunded_order_is_still_already_charged() -> None:
    state = given(attempted(), charged(), PaymentRefunded(OID, PAY_1, "cancelled"))
    assert decide(state, request(1, 2), Approved(PAY_2)) == Decision(
        PaymentResult(PaymentStatus.ALREADY_CHARGED, OID, 1, 2, PAY_1)
    )


def test_an_attempt_cut_from_its_outcome_gets_only_the_outcome() -> None:
    state = given(attempted())  # never written by the service; the fold tolerates it
    assert decide(state, request(), Declined(DECLINED)).events == (failed(),)


# -- refunds -----------------------------------------------------------------------------


def test_a_charge_is_refunded_once() -> None:
    state = given(attempted(), charged())
    assert refund(state, PAY_1, "cancelled") == [PaymentRefunded(OID, PAY_1, "cancelled")]
    assert refund(fold(refund(state, PAY_1, "cancelled"), state), PAY_1, "again") == []


@pytest.mark.parametrize(
    "events", [[], [attempted(), failed()], [attempted(), charged(payment_id=PAY_2)]]
)
def test_only_the_charge_of_the_order_can_be_refunded(events: list[PaymentEvent]) -> None:
    with pytest.raises(NotCharged):
        refund(fold(events), PAY_1, "cancelled")


# -- value rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount"), [("12.34", "12.34"), ("5", "5.00"), ("0.1", "0.10"), ("007.50", "7.50")]
)
def test_amounts_are_decimal_strings_normalised_to_cents(text: str, amount: str) -> None:
    parsed = parse_amount(text)
    assert parsed == Decimal(amount)
    assert str(parsed) == amount


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.00",
        "-1",
        "+1",
        "1.234",
        "1e3",
        "",
        " 1",
        "1.",
        ".5",
        "NaN",
        "Infinity",
        "1,00",
        "١٢",
        "1" * 40,
        "1000000000000",
    ],
)
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_amount(text)
    assert refused.value.field == "amount"


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", "", "€"])
def test_currencies_are_three_capital_letters(currency: str) -> None:
    with pytest.raises(InvalidValue):
        valid_currency(currency)
    assert valid_currency("USD") == "USD"

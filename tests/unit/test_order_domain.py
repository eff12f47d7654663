"""The order's status machine as given/when/then on events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from microshop.domain import Kind
from services.order import domain
from services.order.domain import (
    CANCELLED,
    PAID,
    PAYMENT_FAILED,
    PENDING_PAYMENT,
    IllegalTransition,
    OrderCancelled,
    OrderLine,
    PaymentFailed,
    PaymentRetryRequested,
    PaymentSucceeded,
)

LINES = [
    OrderLine("p1", "Mug", Decimal("12.90"), 2, Decimal("25.80")),
    OrderLine("p2", "Tee", Decimal("24.50"), 1, Decimal("24.50")),
]


def given(*events: object) -> domain.Order:
    order = domain.fold([*domain.place("o1", "u1", LINES, "EUR", 3), *events])
    assert order is not None
    return order


def test_placing_derives_the_total_and_waits_for_payment() -> None:
    [placed] = domain.place("o1", "u1", LINES, "EUR", 3)
    assert isinstance(placed, domain.OrderPlaced)
    assert placed.total == Decimal("50.30")
    order = given()
    assert (order.status, order.round, order.attempts) == (PENDING_PAYMENT, 1, 0)
    with pytest.raises(domain.OrderDomainError):
        domain.place("o2", "u1", [], "EUR", 1)


def test_a_cart_with_a_product_no_longer_sold_orders_nothing_and_names_it() -> None:
    gone = OrderLine("p3", "Old hat", Decimal("1.00"), 5, Decimal("5.00"))
    for lines in (LINES, []):
        with pytest.raises(domain.ProductUnavailable) as refused:
            domain.place("o3", "u1", lines, "EUR", 4, unavailable=[gone])
        assert (refused.value.kind, refused.value.code) == (Kind.CONFLICT, "product_unavailable")
        assert refused.value.details == {"products": [{"product_id": "p3", "name": "Old hat"}]}


def test_a_payment_is_recorded_once() -> None:
    order = given()
    events = domain.payment_succeeded(order, 1, 2, "pay-1")
    assert events == [PaymentSucceeded("o1", 1, 2, "pay-1")]
    paid = given(*events)
    assert (paid.status, paid.attempts, paid.payment_id) == (PAID, 2, "pay-1")
    assert domain.payment_succeeded(paid, 1, 3, "pay-2") == []  # a repeated report


def test_a_payment_for_a_cancelled_order_is_refused() -> None:
    cancelled = given(OrderCancelled("o1", "changed my mind"))
    with pytest.raises(IllegalTransition) as caught:
        domain.payment_succeeded(cancelled, 1, 1, "pay-1")
    assert caught.value.code == "order_cancelled"


def test_failure_then_retry_then_payment() -> None:
    failed = given(*domain.payment_failed(given(), 1, 3, "declined"))
    assert (failed.status, failed.attempts) == (PAYMENT_FAILED, 3)
    [retry] = domain.request_retry(failed)
    assert retry == PaymentRetryRequested("o1", 2, Decimal("50.30"), "EUR")
    retried = given(PaymentFailed("o1", 1, 3, "declined"), retry)
    assert (retried.status, retried.round) == (PENDING_PAYMENT, 2)
    assert domain.payment_failed(retried, 1, 3, "late report of round 1") == []  # stale
    paid = given(
        PaymentFailed("o1", 1, 3, "x"), retry, *domain.payment_succeeded(retried, 2, 1, "p")
    )
    assert (paid.status, paid.attempts) == (PAID, 4)


@pytest.mark.parametrize(
    ("history", "action"),
    [
        ((), domain.request_retry),  # only a failed payment can be retried
        ((PaymentSucceeded("o1", 1, 1, "p"),), domain.request_retry),
        ((PaymentSucceeded("o1", 1, 1, "p"),), domain.cancel),
        ((OrderCancelled("o1", "x"),), domain.cancel),
        ((OrderCancelled("o1", "x"),), domain.request_retry),
    ],
)
def test_illegal_transitions(history: tuple[object, ...], action: object) -> None:
    with pytest.raises(IllegalTransition):
        action(given(*history))  # type: ignore[operator]


def test_cancel_from_pending_or_failed() -> None:
    assert given(*domain.cancel(given())).status == CANCELLED
    failed = given(PaymentFailed("o1", 1, 3, "x"))
    assert given(PaymentFailed("o1", 1, 3, "x"), *domain.cancel(failed)).status == CANCELLED
    assert domain.payment_failed(given(OrderCancelled("o1", "x")), 1, 3, "x") == []

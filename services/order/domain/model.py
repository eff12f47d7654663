"""An order's life: placed from a cart, paid or failed (retried by hand), or cancelled.

Statuses: PENDING_PAYMENT -> PAID | PAYMENT_FAILED; PAYMENT_FAILED ->
PENDING_PAYMENT (a retry); PENDING_PAYMENT | PAYMENT_FAILED -> CANCELLED. PAID and
CANCELLED are final. No decision sets a status directly: each records what happened and
the fold derives the status.

Payments happen in *rounds*: round 1 starts when the order is placed, each retry starts
the next one. Within a round order-consumer makes several attempts; an outcome that
belongs to an older round than the current one is stale and changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

import msgspec

from microshop.domain import DomainError, Kind

PENDING_PAYMENT = "PENDING_PAYMENT"
PAID = "PAID"
PAYMENT_FAILED = "PAYMENT_FAILED"
CANCELLED = "CANCELLED"
FINAL = frozenset({PAID, CANCELLED})


class OrderDomainError(DomainError):
    """A decision the order refuses."""

    code = "order_error"


class OrderNotFound(OrderDomainError):
    """No such order (or none the caller may see)."""

    kind, code = Kind.NOT_FOUND, "not_found"

    def __init__(self) -> None:
        super().__init__("no such order")


class EmptyOrder(OrderDomainError):
    """Nothing to order: the cart has no lines."""

    kind, code = Kind.INVALID, "cart_empty"

    def __init__(self) -> None:
        super().__init__("the cart is empty")


class ProductUnavailable(OrderDomainError):
    """The cart holds products the catalog no longer sells: nothing is ordered (HTTP 409)."""

    kind, code = Kind.CONFLICT, "product_unavailable"

    def __init__(self, lines: Sequence[OrderLine]) -> None:
        names = ", ".join(line.name for line in lines)
        super().__init__(
            f"no longer sold: {names}; remove them from the cart to order the rest",
            details={
                "products": [{"product_id": line.product_id, "name": line.name} for line in lines]
            },
        )


class IllegalTransition(OrderDomainError):
    """The order's status does not allow this (HTTP 409)."""

    kind, code = Kind.CONFLICT, "illegal_transition"

    def __init__(self, action: str, status: str, code: str | None = None) -> None:
        super().__init__(
            f"cannot {action} an order that is {status}", code=code, details={"status": status}
        )
        self.action, self.status = action, status


# -- events ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The contract cart-service consumes (services/cart/schemas.py, OrderPlacedSchema)."""

    order_id: str
    user_id: str
    items: tuple[OrderLine, ...]
    total: Decimal
    currency: str
    cart_version: int = 0  # the cart state it was placed from (0: not known)


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentSucceeded:
    order_id: str
    round: int
    attempt: int
    payment_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentFailed:
    order_id: str
    round: int
    attempts: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRetryRequested:
    order_id: str
    round: int
    total: Decimal
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class OrderCancelled:
    order_id: str
    reason: str


OrderEvent = OrderPlaced | PaymentSucceeded | PaymentFailed | PaymentRetryRequested | OrderCancelled


# -- state -------------------------------------------------------------------------------


class Order(msgspec.Struct, frozen=True, gc=False):
    """An order's state, as the fold derives it (a struct: the fold makes one per event,
    and a frozen dataclass costs 30 times as much to copy with a change)."""

    id: str
    user_id: str
    status: str
    items: tuple[OrderLine, ...]
    total: Decimal
    currency: str
    round: int
    attempts: int  # payment attempts over every round
    payment_id: str | None = None


def apply(order: Order | None, event: object) -> Order | None:
    """The order after `event` (events of other types leave it as it is)."""
    if isinstance(event, OrderPlaced):
        return Order(
            event.order_id,
            event.user_id,
            PENDING_PAYMENT,
            tuple(event.items),
            event.total,
            event.currency,
            round=1,
            attempts=0,
        )
    if order is None:
        return None
    if isinstance(event, PaymentSucceeded):
        return msgspec.structs.replace(
            order, status=PAID, payment_id=event.payment_id, attempts=order.attempts + event.attempt
        )
    if isinstance(event, PaymentFailed):
        return msgspec.structs.replace(
            order, status=PAYMENT_FAILED, attempts=order.attempts + event.attempts
        )
    if isinstance(event, PaymentRetryRequested):
        return msgspec.structs.replace(order, status=PENDING_PAYMENT, round=event.round)
    if isinstance(event, OrderCancelled):
        return msgspec.structs.replace(order, status=CANCELLED)
    return order


def fold(events: Iterable[object], order: Order | None = None) -> Order | None:
    """The order after `events`, from `order` (None: from before it was placed)."""
    for event in events:
        order = apply(order, event)
    return order


def existing(
    decide: Callable[[Order], list[OrderEvent]],
) -> Callable[[Order | None], list[OrderEvent]]:
    """`decide` for an order that must exist (`OrderNotFound` otherwise)."""

    def decide_existing(order: Order | None) -> list[OrderEvent]:
        if order is None:
            raise OrderNotFound()
        return decide(order)

    return decide_existing


# -- decisions ---------------------------------------------------------------------------


def place(
    order_id: str,
    user_id: str,
    lines: Sequence[OrderLine],
    currency: str,
    cart_version: int,
    unavailable: Sequence[OrderLine] = (),
) -> list[OrderEvent]:
    """An order of `lines` at the prices the cart shows them (the catalog's current ones);
    the total is derived, never given. A cart with `unavailable` lines (products no longer
    sold) orders nothing: `ProductUnavailable` names them."""
    if unavailable:
        raise ProductUnavailable(unavailable)
    if not lines:
        raise EmptyOrder()
    total = sum((line.line_total for line in lines), Decimal("0.00"))
    return [OrderPlaced(order_id, user_id, tuple(lines), total, currency, cart_version)]


def payment_succeeded(order: Order, round_: int, attempt: int, payment_id: str) -> list[OrderEvent]:
    """Record a charge once; a repeated report of the same charge changes nothing.

    A cancelled order refuses it (`order_cancelled`): the payer gets the money back.
    """
    if order.status == PAID:
        return []  # exactly one PaymentSucceeded per paid order
    if order.status == CANCELLED:
        raise IllegalTransition("record a payment for", order.status, code="order_cancelled")
    return [PaymentSucceeded(order.id, round_, attempt, payment_id)]


def payment_failed(order: Order, round_: int, attempts: int, reason: str) -> list[OrderEvent]:
    """The current round's budget is spent; stale or late reports change nothing."""
    if order.status != PENDING_PAYMENT or round_ != order.round:
        return []
    return [PaymentFailed(order.id, round_, attempts, reason)]


def request_retry(order: Order) -> list[OrderEvent]:
    """Start the next payment round; only a failed payment can be retried."""
    if order.status != PAYMENT_FAILED:
        raise IllegalTransition("retry the payment of", order.status)
    return [PaymentRetryRequested(order.id, order.round + 1, order.total, order.currency)]


def cancel(order: Order, reason: str = "cancelled by the customer") -> list[OrderEvent]:
    if order.status in FINAL:
        raise IllegalTransition("cancel", order.status)
    return [OrderCancelled(order.id, reason)]

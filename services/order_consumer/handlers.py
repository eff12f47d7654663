"""From `OrderPlaced` / `PaymentRetryRequested` to a paid or failed order.

Each delivery of such an event is one payment attempt of its round. A declined attempt is
retried later through the consumer's delay queues (ORDER_CONSUMER_BACKOFF_INITIAL, times
ORDER_CONSUMER_BACKOFF_MULTIPLIER each time), so one order waiting never blocks another.
After ORDER_CONSUMER_RETRY_ATTEMPTS declines the round is reported as failed. Every call is
idempotent (payment per order+round+attempt, outcomes per round), so a redelivery, a
second instance or a restart mid-way never charges twice.

`PaymentDriver` only talks to order-service and payment-service; what to do next is
`decisions.next_step`'s choice, made from what the driver has seen.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Any

import marshmallow
import msgspec
from marshmallow import Schema, fields

from eventstore import HandlerContext, Reject, RetryLater
from microshop.client import Reply, ServiceClient, UpstreamError

from . import decisions
from .decisions import Charge, OrderView, PaymentAnswer

__all__ = ["EXTRA_DELIVERIES", "PaymentDriver", "PaymentRound", "payment_round"]

log = logging.getLogger(__name__)

EXTRA_DELIVERIES = 5
"""Deliveries beyond the payment attempts, spent only on reporting the outcome."""


class _RoundSchema(Schema):
    order_id = fields.UUID(required=True)
    round = fields.Integer(load_default=1, strict=True)
    total = fields.Decimal(required=True)
    currency = fields.String(required=True)

    class Meta:
        unknown = marshmallow.EXCLUDE


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentRound:
    order_id: str
    round: int
    total: Decimal
    currency: str


def payment_round(data: object) -> PaymentRound:
    """The round an `OrderPlaced` or `PaymentRetryRequested` starts (`Reject`: malformed)."""
    try:
        body = _RoundSchema().load(msgspec.to_builtins(data))
    except (marshmallow.ValidationError, TypeError) as exc:
        raise Reject(f"not a payment round: {exc}") from exc
    return PaymentRound(str(body["order_id"]), body["round"], body["total"], body["currency"])


def _charge(attempt: dict[str, Any], round_: int) -> Charge:
    return Charge(
        str(attempt["payment_id"]),
        int(attempt.get("round", round_)),
        int(attempt.get("attempt", 1)),
    )


class PaymentDriver:
    """The handler: one payment attempt per delivery, outcomes reported to order-service.

    Trouble reaching either service, or an answer of 5xx, 401, 403 or 429, is transient:
    the delivery is retried later (`RetryLater`). An answer that can never succeed (the
    other service refuses the request itself) parks the message (`Reject`).
    """

    def __init__(self, orders: ServiceClient, payments: ServiceClient, attempts: int) -> None:
        self.orders = orders
        self.payments = payments
        self.attempts = attempts

    async def __call__(self, ctx: HandlerContext) -> None:
        work = payment_round(ctx.event.data)
        # the event's correlation id and trace context: added by the app's client
        headers = {"X-Causation-ID": str(ctx.event.event_id)}
        seen: decisions.Seen = decisions.SawOrder(await self._order(work, headers))
        while True:
            step = decisions.next_step(seen, work.round, ctx.attempt, self.attempts)
            if isinstance(step, decisions.Stop):
                return
            if isinstance(step, decisions.Park):
                raise Reject(f"order {work.order_id}: {step.why}")
            if isinstance(step, decisions.RetryLater):
                raise RetryLater(step.why)
            if isinstance(step, decisions.Pay):
                log.info(
                    "paying order %s: round %d attempt %d of %d",
                    work.order_id,
                    work.round,
                    ctx.attempt,
                    self.attempts,
                    extra={"order_id": work.order_id},
                )
                seen = decisions.SawPayment(await self._pay(work, ctx.attempt, headers))
            elif isinstance(step, decisions.FindCharge):
                charge = await self._charge_of(work, headers, any_round=step.any_round)
                seen = decisions.SawCharge(charge, step.any_round)
            elif isinstance(step, decisions.ReportSuccess):
                await self._report_success(work, step.charge, headers)
                return
            else:
                log.warning(
                    "order %s: payment declined %d times, giving up",
                    work.order_id,
                    step.attempts,
                    extra={"order_id": work.order_id},
                )
                await self._report_failure(work, step.attempts, headers)
                return

    # -- the calls ---------------------------------------------------------------------

    async def _call(
        self,
        client: ServiceClient,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
    ) -> Reply:
        """The reply to `method path`, whatever its status; `RetryLater` when the service
        cannot answer now (unreachable, slow, 5xx, or refusing us for a while)."""
        try:
            reply = await client.request(method, path, json=body, headers=headers)
        except UpstreamError as exc:
            raise RetryLater(f"{method} {path}: {exc}") from exc
        if reply.status in (401, 403, 429):
            raise RetryLater(f"{method} {path}: HTTP {reply.status}")
        if reply.ok and not isinstance(reply.body, dict):
            raise RetryLater(f"{method} {path}: the answer is not a JSON object")
        return reply

    async def _order(self, work: PaymentRound, headers: dict[str, str]) -> OrderView | None:
        reply = await self._call(self.orders, "GET", f"/internal/orders/{work.order_id}", headers)
        if reply.status == 404:
            return None
        if not reply.ok:
            raise RetryLater(f"order-service answered {reply.status} for the order")
        return OrderView(str(reply.body["status"]), int(reply.body["payment_round"]))

    async def _pay(
        self, work: PaymentRound, attempt: int, headers: dict[str, str]
    ) -> PaymentAnswer:
        body = {
            "order_id": work.order_id,
            "round": work.round,
            "attempt": attempt,
            "amount": f"{work.total:.2f}",
            "currency": work.currency,
        }
        reply = await self._call(self.payments, "POST", "/internal/payments", headers, body)
        if reply.status != 200:
            raise Reject(f"payment-service refused the request: {reply.body}")
        answer = reply.body
        charge = _charge(answer, work.round) if answer.get("payment_id") else None
        return PaymentAnswer(
            str(answer["status"]), charge, bool(answer.get("reported")), answer.get("reason")
        )

    async def _charge_of(
        self, work: PaymentRound, headers: dict[str, str], *, any_round: bool
    ) -> Charge | None:
        """The order's successful attempt (of this round only, unless `any_round`)."""
        path = f"/internal/payments/{work.order_id}"
        reply = await self._call(self.payments, "GET", path, headers)
        if reply.status == 404:  # no attempt at all
            return None
        if not reply.ok:
            raise RetryLater(f"GET {path}: HTTP {reply.status}")
        charged = [
            a
            for a in reply.body.get("attempts", [])
            if a.get("status") == "charged" and (any_round or a.get("round") == work.round)
        ]
        return _charge(charged[0], work.round) if charged else None

    async def _report_success(
        self, work: PaymentRound, charge: Charge, headers: dict[str, str]
    ) -> None:
        path = f"/internal/orders/{work.order_id}/payment-succeeded"
        body = {"round": charge.round, "attempt": charge.attempt, "payment_id": charge.payment_id}
        reply = await self._call(self.orders, "POST", path, headers, body)
        if reply.status == 409:  # cancelled meanwhile: payment-service refunds on its side
            return
        if reply.status != 200:
            raise Reject(f"order-service refused the payment report: {reply.body}")

    async def _report_failure(
        self, work: PaymentRound, attempts: int, headers: dict[str, str]
    ) -> None:
        path = f"/internal/orders/{work.order_id}/payment-failed"
        body = {
            "round": work.round,
            "attempts": attempts,
            "reason": f"payment declined {attempts} times",
        }
        reply = await self._call(self.orders, "POST", path, headers, body)
        if reply.status not in (200, 409):
            raise Reject(f"order-service refused the failure report: {reply.body}")

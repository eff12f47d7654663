"""From `OrderPlaced` / `PaymentRetryRequested` to a paid or failed order.

Each delivery of such an event is one payment attempt of its round. A declined attempt is
retried later through the consumer's delay queues (ORDER_CONSUMER_BACKOFF_INITIAL, times
ORDER_CONSUMER_BACKOFF_MULTIPLIER each time), so one order waiting never blocks another.
After ORDER_CONSUMER_RETRY_ATTEMPTS declines the round is reported as failed. Every call is
idempotent (payment per order+round+attempt, outcomes per round), so a redelivery, a
second instance or a restart mid-way never charges twice.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Any

import aiohttp
import marshmallow
import msgspec
from marshmallow import Schema, fields

from eventstore import HandlerContext, Reject, RetryLater
from microshop.config import Config

__all__ = ["EXTRA_DELIVERIES", "PaymentDriver"]

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
    try:
        body = _RoundSchema().load(msgspec.to_builtins(data))
    except (marshmallow.ValidationError, TypeError) as exc:
        raise Reject(f"not a payment round: {exc}") from exc
    return PaymentRound(str(body["order_id"]), body["round"], body["total"], body["currency"])


class PaymentDriver:
    """The handler: one payment attempt per delivery, outcomes reported to order-service."""

    def __init__(self, config: Config, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.attempts = config.order_consumer_retry_attempts

    def _headers(self, ctx: HandlerContext) -> dict[str, str]:
        # the event's correlation id and trace context: added by the app's client
        return {"X-Internal-Api-Key": self.config.internal_api_key,
                "X-Causation-ID": str(ctx.event.event_id)}  # fmt: skip

    async def _call(self, ctx: HandlerContext, method: str, url: str, body: Any = None) -> Any:
        """JSON of a 2xx answer; RetryLater for anything transient."""
        try:
            async with self.session.request(method, url, json=body,
                                            headers=self._headers(ctx)) as resp:  # fmt: skip
                payload = await resp.json(content_type=None)
                if resp.status >= 500 or resp.status in (401, 403, 429):
                    raise RetryLater(f"{method} {url}: HTTP {resp.status}")
                return resp.status, payload
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RetryLater(f"{method} {url}: {type(exc).__name__}: {exc}") from exc

    async def __call__(self, ctx: HandlerContext) -> None:
        work = payment_round(ctx.event.data)
        order_url = f"{self.config.url_of('order')}/internal/orders/{work.order_id}"
        status, order = await self._call(ctx, "GET", order_url)
        if status == 404:
            raise Reject(f"order {work.order_id} does not exist")
        if order["status"] != "PENDING_PAYMENT" or order["payment_round"] != work.round:
            return  # paid, cancelled, failed already, or a newer round runs: nothing to do
        if ctx.attempt > self.attempts:  # the budget was spent; only the report is missing
            # ...unless the last attempt charged and neither report got through
            charge = await self._charge_of_round(ctx, work)
            if charge is not None:
                await self._report_success(ctx, order_url, work, charge)
            else:
                await self._report_failure(ctx, order_url, work, self.attempts)
            return
        log.info("paying order %s: round %d attempt %d of %d", work.order_id, work.round,
                 ctx.attempt, self.attempts, extra={"order_id": work.order_id})  # fmt: skip
        status, payment = await self._call(ctx, "POST",
            f"{self.config.url_of('payment')}/internal/payments",
            {"order_id": work.order_id, "round": work.round, "attempt": ctx.attempt,
             "amount": f"{work.total:.2f}", "currency": work.currency},
        )  # fmt: skip
        if status != 200:
            raise Reject(f"payment-service refused the request: {payment}")
        if payment["status"] == "charged" and payment.get("reported"):
            return  # payment-service told order-service itself
        if payment["status"] == "already_charged":  # an earlier delivery charged it
            payment = await self._original_charge(ctx, work)
        if payment["status"] in ("charged", "already_charged"):
            await self._report_success(ctx, order_url, work, payment)
        elif ctx.attempt >= self.attempts:
            log.warning("order %s: payment declined %d times, giving up", work.order_id,
                        ctx.attempt, extra={"order_id": work.order_id})  # fmt: skip
            await self._report_failure(ctx, order_url, work, ctx.attempt)
        else:
            raise RetryLater(f"attempt {ctx.attempt} declined: {payment.get('reason')}")

    async def _original_charge(self, ctx: HandlerContext, work: PaymentRound) -> dict[str, Any]:
        """The attempt that really charged (`already_charged` echoes the asking one)."""
        url = f"{self.config.url_of('payment')}/internal/payments/{work.order_id}"
        status, listing = await self._call(ctx, "GET", url)
        charged = [a for a in listing.get("attempts", []) if a.get("status") == "charged"]
        if status != 200 or not charged:
            raise RetryLater(f"no charge found for {work.order_id} although one was reported")
        return {"status": "charged", **charged[0]}

    async def _charge_of_round(
        self, ctx: HandlerContext, work: PaymentRound
    ) -> dict[str, Any] | None:
        """The attempt of this round that charged, if one did."""
        url = f"{self.config.url_of('payment')}/internal/payments/{work.order_id}"
        status, listing = await self._call(ctx, "GET", url)
        if status == 404:  # no attempt at all
            return None
        if status != 200:
            raise RetryLater(f"GET {url}: HTTP {status}")
        charged = [a for a in listing.get("attempts", [])
                   if a.get("status") == "charged" and a.get("round") == work.round]  # fmt: skip
        return {"status": "charged", **charged[0]} if charged else None

    async def _report_success(self, ctx: HandlerContext, url: str, work: PaymentRound,
                              payment: dict[str, Any]) -> None:  # fmt: skip
        status, answer = await self._call(ctx, "POST", f"{url}/payment-succeeded",
            {"round": payment.get("round", work.round), "attempt": payment.get("attempt", 1),
             "payment_id": payment["payment_id"]})  # fmt: skip
        if status == 409:  # cancelled meanwhile: payment-service refunds on its side
            return
        if status != 200:
            raise Reject(f"order-service refused the payment report: {answer}")

    async def _report_failure(self, ctx: HandlerContext, url: str, work: PaymentRound,
                              attempts: int) -> None:  # fmt: skip
        status, answer = await self._call(ctx, "POST", f"{url}/payment-failed",
            {"round": work.round, "attempts": attempts,
             "reason": f"payment declined {attempts} times"})  # fmt: skip
        if status not in (200, 409):
            raise Reject(f"order-service refused the failure report: {answer}")

"""order-service as payment-service sees it: one best-effort call reporting a charge.

`POST /internal/orders/{order_id}/payment-succeeded` is idempotent on order-service's side,
and order-consumer reports the same charge too, so a report that fails is logged and
dropped, never retried here and never turned into a failed payment answer.
"""

from __future__ import annotations

import enum
import logging

from microshop.client import ServiceClient, UpstreamError

from .domain import PaymentResult

__all__ = ["REPORT_TIMEOUT", "OrderService", "Report"]

log = logging.getLogger(__name__)

REPORT_TIMEOUT = 3.0
"""Seconds a report may take (capped by UPSTREAM_TIMEOUT_SECONDS): the caller is waiting."""


class Report(enum.Enum):
    """How order-service took a report."""

    ACCEPTED = "accepted"
    ORDER_CANCELLED = "order_cancelled"
    FAILED = "failed"


class OrderService:
    """order-service's internal API (the client carries the internal key)."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def payment_succeeded(
        self, result: PaymentResult, *, causation_id: str | None = None
    ) -> Report:
        """Report the charge `result` names; never raises for upstream trouble."""
        path = f"/internal/orders/{result.order_id}/payment-succeeded"
        body = {
            "round": result.round,
            "attempt": result.attempt,
            "payment_id": str(result.payment_id),
        }
        headers = {"X-Causation-ID": causation_id} if causation_id is not None else {}
        try:
            reply = await self._client.post(path, json=body, headers=headers)
        except UpstreamError as exc:
            log.warning("cannot report the charge of order %s: %s", result.order_id, exc)
            return Report.FAILED
        if reply.ok:
            return Report.ACCEPTED
        if reply.status == 409 and reply.error_code == "order_cancelled":
            return Report.ORDER_CANCELLED
        log.warning(
            "order-service answered %d to the charge of order %s: %s",
            reply.status,
            result.order_id,
            reply.error_message,
        )
        return Report.FAILED

"""order-service as payment-service sees it: one best-effort call reporting a charge.

`POST /internal/orders/{order_id}/payment-succeeded` is idempotent on order-service's side,
and order-consumer reports the same charge too, so a report that fails is logged and
dropped, never retried here and never turned into a failed payment answer.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import aiohttp

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
    """Calls order-service's internal API with the internal key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        *,
        timeout: float = REPORT_TIMEOUT,
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def payment_succeeded(
        self, result: PaymentResult, *, causation_id: str | None = None
    ) -> Report:
        """Report the charge `result` names; never raises for upstream trouble."""
        url = f"{self._base_url}/internal/orders/{result.order_id}/payment-succeeded"
        body = {"round": result.round, "attempt": result.attempt,
                "payment_id": str(result.payment_id)}  # fmt: skip
        headers = {"X-Internal-Api-Key": self._api_key}  # correlation: the client adds it
        if causation_id is not None:
            headers["X-Causation-ID"] = causation_id
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return Report.ACCEPTED
                error = await _error_of(resp)
        except TimeoutError:
            log.warning("order-service did not take the charge of order %s in time",
                        result.order_id)  # fmt: skip
            return Report.FAILED
        except aiohttp.ClientError as exc:
            log.warning("cannot report the charge of order %s to order-service: %s: %s",
                        result.order_id, type(exc).__name__, exc)  # fmt: skip
            return Report.FAILED
        if resp.status == 409 and error.get("code") == "order_cancelled":
            return Report.ORDER_CANCELLED
        log.warning("order-service answered %d to the charge of order %s: %s",
                    resp.status, result.order_id, error.get("message") or error)  # fmt: skip
        return Report.FAILED


async def _error_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The `error` object of an error answer (DESIGN §5), or {} when it has none."""
    try:
        body = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}

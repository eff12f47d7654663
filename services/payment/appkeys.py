"""payment-service's own app state (typed keys, no singletons)."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from aioprometheus.collectors import Counter

from microshop.metrics import Metrics

from .orders import OrderService
from .simulator import PaymentSimulator

__all__ = ["ORDER_SERVICE", "PAYMENT_METRICS", "SIMULATOR", "PaymentMetrics"]


@dataclasses.dataclass(frozen=True, slots=True)
class PaymentMetrics:
    """`payments_total{outcome}` and `payment_refunds_total` on the service's registry."""

    payments: Counter
    refunds: Counter

    @classmethod
    def on(cls, metrics: Metrics) -> PaymentMetrics:
        return cls(
            payments=metrics.counter(
                "payments_total",
                "Payment requests by outcome (charged, declined, already_charged).",
            ),
            refunds=metrics.counter(
                "payment_refunds_total", "Charges refunded because their order was cancelled."
            ),
        )


SIMULATOR = web.AppKey("payment_simulator", PaymentSimulator)
ORDER_SERVICE = web.AppKey("order_service", OrderService)
PAYMENT_METRICS = web.AppKey("payment_metrics", PaymentMetrics)

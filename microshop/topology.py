"""Load every event type and projection the services define, and name every consumer
queue (for the CLI and the operator pages)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping

from eventstore import Projection, projections

from .services import SERVICES

__all__ = ["CONSUMER_QUEUES", "ConsumerSpec", "load_projections"]


@dataclasses.dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A consumer some service runs: queue `{ns}.{name}` bound to `{ns}.events` by
    `bindings`, written for the event types and schema versions in `accepts` (any other
    is parked with the reason, never read as the wrong version)."""

    name: str
    service: str
    bindings: tuple[str, ...]
    accepts: Mapping[str, frozenset[int]]


CONSUMER_QUEUES: dict[str, ConsumerSpec] = {
    spec.name: spec
    for spec in (
        ConsumerSpec(
            "cart-checkout", "cart", ("order.OrderPlaced",), {"OrderPlaced": frozenset({1})}
        ),
        ConsumerSpec(
            "order-payments",
            "order-consumer",
            ("order.OrderPlaced", "order.PaymentRetryRequested"),
            {"OrderPlaced": frozenset({1}), "PaymentRetryRequested": frozenset({1})},
        ),
    )
}
"""Every consumer queue of the system (`tests/integration/test_web_admin.py` checks that
the services declare exactly these)."""


def _import_if_present(module: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        importlib.import_module(module)


def load_projections() -> dict[str, Projection]:
    """Every registered projection by name, after importing each service's modules."""
    importlib.import_module("eventstore.streams")
    for module in SERVICES.values():
        package = module.rpartition(".")[0]
        _import_if_present(f"{package}.events")
        _import_if_present(f"{package}.projections")
    return dict(sorted(projections.items()))

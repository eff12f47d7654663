"""Load every event type and projection the services define, and name every consumer
queue (for the CLI and the operator pages), with a `Consumer` per queue to work on its
parking queue and redeliver events to it."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Mapping

from eventstore import Consumer, HandlerContext, PostgresEventStore, Projection, Reject, projections

from .config import Config
from .services import SERVICES

__all__ = [
    "CONSUMER_QUEUES",
    "LOG_READERS",
    "ConsumerSpec",
    "ReaderSpec",
    "consumers_for",
    "load_projections",
]


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


@dataclasses.dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A read model of one service folding events another service writes, straight from
    the global log (no queue): written for the types and versions in `accepts`; another
    version of those types is parked by its runner, never read as the wrong one."""

    name: str
    service: str
    accepts: Mapping[str, frozenset[int]]


_V1 = frozenset({1})

LOG_READERS: dict[str, ReaderSpec] = {
    spec.name: spec
    for spec in (
        ReaderSpec(
            "cart_catalog",
            "cart",
            {
                "ProductCreated": _V1,
                "ProductUpdated": _V1,
                "ProductPriceChanged": _V1,
                "ProductDiscontinued": _V1,
            },
        ),
    )
}
"""Every read model that reads another service's events from the log: those events are
integration events too (`microshop.contracts`), like those a consumer queue accepts."""


async def _never_called(ctx: HandlerContext) -> None:  # pragma: no cover - never consumed
    raise Reject("this consumer only works on its queues, it does not consume")


def consumers_for(config: Config, store: PostgresEventStore) -> dict[str, Consumer]:
    """A `Consumer` per queue of the system, for listing and replaying its parking queue
    and redelivering events to it (they never consume: the services do)."""
    return {
        name: Consumer(
            store,
            amqp_url=config.amqp_url,
            namespace=config.namespace,
            name=name,
            bindings=spec.bindings,
            handler=_never_called,
            accepts=spec.accepts,
            queue_type=config.amqp_queue_type,
        )
        for name, spec in CONSUMER_QUEUES.items()
    }


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

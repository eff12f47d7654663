"""Integration events as contracts: each published schema matches its producer, and what a
producer writes is what every consumer that accepts it can load."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import jsonschema

from eventstore import EventRegistry, registry
from microshop import contracts
from microshop.topology import CONSUMER_QUEUES
from services.cart.handlers import placed_order
from services.order import domain
from services.order import events as _order_events  # noqa: F401  (registers the producer's)
from services.order_consumer.handlers import payment_round

LINES = [domain.OrderLine("p-1", "Mug", Decimal("12.50"), 2, Decimal("25.00"))]


def published(event_type: str, version: int) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(contracts.schema_path(event_type, version).read_text())
    return loaded


def test_the_published_schemas_match_the_producers_code() -> None:
    assert contracts.check() == []
    assert set(contracts.accepted()) == {"OrderPlaced", "PaymentRetryRequested"}


def test_every_accepted_version_is_published() -> None:
    for spec in CONSUMER_QUEUES.values():
        for event_type, versions in spec.accepts.items():
            for version in versions:
                assert contracts.schema_path(event_type, version).exists(), (spec.name, event_type)


def test_a_shape_changed_without_a_new_version_is_caught() -> None:
    """What happened to `OrderPlaced.cart_version` once: a field added at the same version."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class OrderPlaced(domain.OrderPlaced):
        discount: Decimal = Decimal(0)

    changed = EventRegistry()
    changed.register(OrderPlaced, name="OrderPlaced", version=1)
    changed.register(domain.PaymentRetryRequested)
    problems = contracts.check(changed)
    assert (
        len(problems) == 1
        and "OrderPlaced v1: the producer's class no longer matches" in (problems[0])
    )


def test_a_new_version_needs_its_schema(tmp_path: Path) -> None:
    bumped = EventRegistry()
    bumped.register(domain.OrderPlaced, name="OrderPlaced", version=2)
    bumped.register(domain.PaymentRetryRequested)
    for path in contracts.SCHEMAS.glob("*.json"):  # the published files, v1 of each
        (tmp_path / path.name).write_text(path.read_text())
    problems = contracts.check(bumped, root=tmp_path)
    assert problems == [
        f"OrderPlaced v2: no schema at {tmp_path / 'OrderPlaced.v2.json'} (run --write)"
    ]
    contracts.write(bumped, root=tmp_path)
    assert contracts.check(bumped, root=tmp_path) == []  # v1 stays published: still accepted


def test_what_the_producer_writes_every_consumer_loads() -> None:
    [placed] = domain.place("0b6f1f2e-5d0b-4d7c-9a57-0c3f2b1e8a44", "user-1", LINES, "EUR", 3)
    order_json = json.loads(registry.encode(placed))
    jsonschema.validate(order_json, published("OrderPlaced", registry.version_of("OrderPlaced")))
    assert placed_order(order_json).lines == (("p-1", 2),)  # cart-checkout
    assert payment_round(order_json).total == Decimal("25.00")  # order-payments

    order = domain.fold([placed])
    assert order is not None
    failed = domain.fold(domain.payment_failed(order, 1, 3, "declined"), order)
    assert failed is not None
    [retry] = domain.request_retry(failed)
    retry_json = json.loads(registry.encode(retry))
    jsonschema.validate(retry_json, published("PaymentRetryRequested", 1))
    assert payment_round(retry_json).round == 2  # order-payments

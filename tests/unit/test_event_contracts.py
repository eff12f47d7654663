"""Integration events as contracts: each published schema matches its producer, and what a
producer writes is what every consumer that accepts it can load."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import jsonschema

from eventstore import EventRegistry, Metadata, RecordedEvent, registry
from microshop import contracts
from microshop.topology import CONSUMER_QUEUES, LOG_READERS
from services.cart.catalog import CATALOG
from services.cart.handlers import placed_order
from services.order import domain
from services.order import events as _order_events  # noqa: F401  (registers the producer's)
from services.order_consumer.handlers import payment_round
from services.product import domain as product
from services.product.events import PRODUCT_EVENTS

PRODUCT_EVENT_NAMES = {cls.__name__ for cls in PRODUCT_EVENTS}

LINES = [domain.OrderLine("p-1", "Mug", Decimal("12.50"), 2, Decimal("25.00"))]


def published(event_type: str, version: int) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(contracts.schema_path(event_type, version).read_text())
    return loaded


def test_the_published_schemas_match_the_producers_code() -> None:
    assert contracts.check() == []
    assert set(contracts.accepted()) == {
        "OrderPlaced",
        "PaymentRetryRequested",
        *PRODUCT_EVENT_NAMES,  # the cart's catalog folds them
    }


def test_every_accepted_version_is_published() -> None:
    declared = [(spec.name, spec.accepts) for spec in CONSUMER_QUEUES.values()]
    declared += [(spec.name, spec.accepts) for spec in LOG_READERS.values()]
    for name, accepts in declared:
        for event_type, versions in accepts.items():
            for version in versions:
                assert contracts.schema_path(event_type, version).exists(), (name, event_type)


def registry_with(*classes: type[object], **versions: int) -> EventRegistry:
    """A registry of today's integration events, `classes` in place of today's ones."""
    registry = EventRegistry()
    replaced = {cls.__name__ for cls in classes}
    today: list[type[object]] = [domain.OrderPlaced, domain.PaymentRetryRequested]
    for kept in [*today, *PRODUCT_EVENTS]:
        if kept.__name__ not in replaced:
            registry.register(kept)
    for cls in classes:
        registry.register(cls, name=cls.__name__, version=versions.get(cls.__name__, 1))
    return registry


def test_a_shape_changed_without_a_new_version_is_caught() -> None:
    """What happened to `OrderPlaced.cart_version` once: a field added at the same version."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class OrderPlaced(domain.OrderPlaced):
        discount: Decimal = Decimal(0)

    problems = contracts.check(registry_with(OrderPlaced))
    assert (
        len(problems) == 1
        and "OrderPlaced v1: the producer's class no longer matches" in (problems[0])
    )


def test_a_new_version_needs_its_schema(tmp_path: Path) -> None:
    bumped = registry_with(domain.OrderPlaced, OrderPlaced=2)
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


def test_what_the_catalog_writes_the_carts_catalog_folds() -> None:
    """product-service's events, as it writes them, validate against their published
    schemas and fold into the cart's catalog (`cart_catalog`) as the product now is."""
    product_id = uuid.uuid4()
    created = product.create(None, product_id, product.NewProduct("MUG-1", "Mug", Decimal("12.50")))
    state = product.fold(created)
    changes = product.ProductChanges(name="Big mug", price=Decimal("500.00"))
    revised = product.revise(state, changes)
    state = product.fold(revised, state)
    events = [*created, *revised, *product.discontinue(state)]
    assert [type(e).__name__ for e in events] == [
        "ProductCreated",
        "ProductUpdated",
        "ProductPriceChanged",
        "ProductDiscontinued",
    ]
    row = None
    for version, event in enumerate(events, start=1):
        name, schema_version = registry.type_of(event)
        data = json.loads(registry.encode(event))
        jsonschema.validate(data, published(name, schema_version))
        recorded = RecordedEvent(
            version, 1, f"product-{data['product_id']}", version, uuid.uuid4(), name,
            schema_version, data, Metadata(), datetime.now(UTC),
        )  # fmt: skip
        row = CATALOG.apply(row, recorded)
    assert row is not None
    assert (row["name"], row["price"], row["active"], row["version"]) == (
        "Big mug",
        Decimal("500.00"),
        False,
        4,
    )

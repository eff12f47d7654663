"""The event registry, upcasting and the AMQP wire form, without I/O."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from eventstore import (
    Dropped,
    EventRegistry,
    Metadata,
    RetryPolicy,
    Undecodable,
    UnknownEventType,
    UpcastError,
)
from eventstore.wire import decode_message, encode_row


@dataclasses.dataclass(frozen=True)
class PriceChanged:
    sku: str
    price: Decimal
    currency: str = "EUR"


def make_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(PriceChanged, version=3)

    @registry.upcaster("PriceChanged", from_version=1)
    def v1(data: dict[str, Any]) -> dict[str, Any]:
        return {"sku": data["product"], "price": data["price"]}

    @registry.upcaster("PriceChanged", from_version=2)
    def v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "currency": data.get("currency", "USD")}

    return registry


def test_encode_keeps_decimals_exact() -> None:
    text = EventRegistry.encode(PriceChanged("a", Decimal("0.10")))
    assert text == '{"sku":"a","price":"0.10","currency":"EUR"}'


def test_current_version_decodes_directly() -> None:
    registry = make_registry()
    assert registry.type_of(PriceChanged("a", Decimal(1))) == ("PriceChanged", 3)
    event = registry.decode("PriceChanged", 3, '{"sku":"a","price":"1.50","currency":"EUR"}')
    assert event == PriceChanged("a", Decimal("1.50"))


def test_old_versions_are_upcast_step_by_step() -> None:
    registry = make_registry()
    assert registry.decode("PriceChanged", 1, '{"product":"a","price":"2"}') == PriceChanged(
        "a", Decimal(2), "USD"
    )
    with pytest.raises(UpcastError, match="newer"):
        registry.decode("PriceChanged", 4, "{}")
    with pytest.raises(UpcastError):
        registry.decode("PriceChanged", 3, '{"sku": 1}')


def test_unknown_types_stay_dicts_and_unregistered_classes_are_refused() -> None:
    registry = make_registry()
    assert registry.decode("Mystery", 1, '{"a": 1}') == {"a": 1}
    with pytest.raises(UnknownEventType):
        registry.type_of(object())
    with pytest.raises(ValueError, match="already registered"):

        @registry.event("PriceChanged")
        @dataclasses.dataclass
        class Other:
            x: int


@dataclasses.dataclass(frozen=True)
class PriceSet:
    sku: str
    price: Decimal


@dataclasses.dataclass(frozen=True)
class CurrencySet:
    sku: str
    currency: str


def reshaped_registry() -> EventRegistry:
    """Stored `PriceChanged` v1..v2 are today's `PriceSet` + `CurrencySet`; `Repriced` v1
    was renamed to `PriceChanged` v2; `PriceTouched` events meant nothing and are dropped."""
    registry = EventRegistry()
    registry.register(PriceSet)
    registry.register(CurrencySet)

    @registry.upcaster("PriceChanged", from_version=1)
    def v1(data: dict[str, Any]) -> dict[str, Any]:
        return {"sku": data["product"], "price": data["price"], "currency": "USD"}

    @registry.upcaster("PriceChanged", from_version=2)
    def split(data: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            ("PriceSet", 1, {"sku": data["sku"], "price": data["price"]}),
            ("CurrencySet", 1, {"sku": data["sku"], "currency": data["currency"]}),
        ]

    registry.rename("Repriced", 1, to="PriceChanged", to_version=2)
    registry.upcaster("PriceTouched", from_version=1)(lambda data: [])
    return registry


def test_an_upcaster_can_split_one_stored_event_into_several() -> None:
    registry = reshaped_registry()
    stored = '{"sku":"a","price":"2.00","currency":"EUR"}'
    assert registry.expands("PriceChanged", 2) and not registry.expands("PriceSet", 1)
    assert registry.decode_many("PriceChanged", 2, stored) == [
        PriceSet("a", Decimal("2.00")),
        CurrencySet("a", "EUR"),
    ]
    with pytest.raises(UpcastError, match="upcasts to 2 events"):
        registry.decode("PriceChanged", 2, stored)  # one event expected (a message)


def test_upcasters_chain_through_a_rename_and_a_split() -> None:
    registry = reshaped_registry()
    # v1 -> v2 (dict), then the split
    assert registry.decode_many("PriceChanged", 1, '{"product":"b","price":"3"}') == [
        PriceSet("b", Decimal(3)),
        CurrencySet("b", "USD"),
    ]
    # renamed to PriceChanged v2, then split
    assert registry.decode_many("Repriced", 1, '{"sku":"c","price":"4","currency":"EUR"}') == [
        PriceSet("c", Decimal(4)),
        CurrencySet("c", "EUR"),
    ]


def test_a_dropped_event_reads_as_dropped() -> None:
    registry = reshaped_registry()
    assert registry.decode_many("PriceTouched", 1, '{"sku":"a"}') == []
    assert registry.decode("PriceTouched", 1, '{"sku":"a"}') == Dropped("PriceTouched", 1)
    rows = registry.decode_rows_data("PriceTouched", 1, '{"sku":"a"}', lenient=False)
    assert rows == [Dropped("PriceTouched", 1)]  # its row still counts for the stream


def test_a_split_that_does_not_fit_is_undecodable_for_lenient_readers() -> None:
    registry = reshaped_registry()
    bad = '{"sku":"a","price":"not money","currency":"EUR"}'
    with pytest.raises(UpcastError, match="PriceSet"):
        registry.decode_many("PriceChanged", 2, bad)
    [undecodable] = registry.decode_rows_data("PriceChanged", 2, bad, lenient=True)
    assert isinstance(undecodable, Undecodable) and "PriceSet" in undecodable.reason


def test_a_cycle_of_upcasters_is_an_error_not_a_hang() -> None:
    registry = EventRegistry()
    registry.rename("A", 1, to="B")
    registry.rename("B", 1, to="A")
    with pytest.raises(UpcastError, match="never end"):
        registry.decode_many("A", 1, "{}")


def test_wire_round_trip() -> None:
    registry = make_registry()
    event_id = uuid.uuid4()
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    meta = Metadata(correlation_id="c-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    row = (
        42,
        7,
        "product-9",
        2,
        event_id,
        "PriceChanged",
        1,
        '{"product":"p","price":"3.30"}',
        EventRegistry.encode(meta),
        at,
    )

    key, body, props = encode_row(row)

    assert key == "product.PriceChanged"
    assert props.message_id == str(event_id)
    assert props.delivery_mode == 2
    assert props.correlation_id == "c-1"
    assert props.headers is not None and props.headers["traceparent"] == meta.traceparent
    event = decode_message(body, registry)
    assert event.data == PriceChanged("p", Decimal("3.30"), "USD")
    assert (event.global_position, event.tx_id, event.stream_version) == (42, 7, 2)
    assert event.event_id == event_id
    assert event.metadata == meta
    assert event.recorded_at == at
    with pytest.raises(msgspec.DecodeError):
        decode_message(b"{nope", registry)


def test_retry_policy_backoff_grows_by_the_multiplier() -> None:
    policy = RetryPolicy(attempts=4, initial=0.5, multiplier=3, max_delay=4)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.5, 1.5, 4.0]
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)

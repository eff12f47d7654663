"""The product aggregate as given/when/then on events: no I/O, no framework."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from services.product.domain import (
    KEEP,
    InvalidValue,
    NewProduct,
    Product,
    ProductAlreadyExists,
    ProductChanges,
    ProductCreated,
    ProductDiscontinued,
    ProductEvent,
    ProductIsDiscontinued,
    ProductNotFound,
    ProductPriceChanged,
    ProductUpdated,
    apply,
    change_price,
    create,
    discontinue,
    fold,
    revise,
    update,
)
from services.product.domain.rules import parse_price, valid_image_url

PID = uuid.UUID("7d0c6a52-7f32-4a0e-9a39-2b6f0f3b1c11")
CREATED = ProductCreated(
    product_id=PID,
    sku="MUG-1",
    name="Mug",
    description="A mug.",
    price=Decimal("12.90"),
    currency="EUR",
    image_url=None,
)


def given(*events: ProductEvent) -> Product | None:
    return fold(events)


def new(**overrides: object) -> NewProduct:
    fields: dict[str, object] = {"sku": "MUG-1", "name": "Mug", "price": Decimal("12.90")}
    fields.update(overrides)
    return NewProduct(**fields)  # type: ignore[arg-type]


# -- the fold ----------------------------------------------------------------------------


def test_the_fold_replays_every_event() -> None:
    state = given(
        CREATED,
        ProductUpdated(PID, "Big mug", "", "https://img.example/m.png"),
        ProductPriceChanged(PID, Decimal("12.90"), Decimal("14.00"), "EUR"),
        ProductDiscontinued(PID),
    )
    assert state == Product(
        PID,
        "MUG-1",
        "Big mug",
        "",
        Decimal("14.00"),
        "EUR",
        "https://img.example/m.png",
        active=False,
    )


def test_a_stream_must_start_with_its_creation() -> None:
    with pytest.raises(ValueError, match="before ProductCreated"):
        apply(None, ProductDiscontinued(PID))
    with pytest.raises(ValueError, match="created twice"):
        given(CREATED, CREATED)


# -- create ------------------------------------------------------------------------------


def test_create_records_product_created_with_normalised_values() -> None:
    events = create(None, PID, new(name="  Mug ☕ ", description=" A mug.\n", price=Decimal("5")))
    assert events == [
        ProductCreated(PID, "MUG-1", "Mug ☕", "A mug.", Decimal("5.00"), "EUR", None)
    ]
    assert str(events[0].price) == "5.00"  # type: ignore[union-attr]


def test_create_refuses_an_existing_product() -> None:
    with pytest.raises(ProductAlreadyExists):
        create(given(CREATED), PID, new())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sku": ""}, "sku"),
        ({"sku": "has space"}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"sku": "MUG-1\n"}, "sku"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"name": "lone \ud800 surrogate"}, "name"),
        ({"description": "x" * 5001}, "description"),
        ({"price": Decimal(0)}, "price"),
        ({"price": Decimal("-1")}, "price"),
        ({"price": Decimal("0.001")}, "price"),
        ({"price": Decimal("1000000.01")}, "price"),
        ({"price": Decimal("NaN")}, "price"),
        ({"price": Decimal("Infinity")}, "price"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"image_url": "//evil.example/x.png"}, "image_url"),
        ({"image_url": "relative/x.png"}, "image_url"),
        ({"image_url": "https://img.example/a b.png"}, "image_url"),
    ],
)
def test_create_refuses_values_breaking_the_rules(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        create(None, PID, new(**overrides))
    assert refused.value.field == field


def test_create_accepts_the_edges_of_the_rules() -> None:
    [event] = create(
        None,
        PID,
        new(
            sku="a" * 64,
            name="n" * 200,
            description="d" * 5000,
            price=Decimal("1000000"),
            currency="JPY",
            image_url="/static/mug.png",
        ),
    )
    assert isinstance(event, ProductCreated)
    assert event.price == Decimal("1000000.00") and event.currency == "JPY"
    [event] = create(None, PID, new(price=Decimal("0.01"), image_url="https://cdn.example/m.png"))
    assert isinstance(event, ProductCreated) and event.price == Decimal("0.01")


# -- update ------------------------------------------------------------------------------


def test_update_records_the_full_descriptive_set_after_the_change() -> None:
    events = update(given(CREATED), name="Large mug")
    assert events == [ProductUpdated(PID, "Large mug", "A mug.", None)]


def test_update_can_reset_the_image_to_the_generated_one() -> None:
    state = given(CREATED, ProductUpdated(PID, "Mug", "A mug.", "https://img.example/m.png"))
    assert update(state, image_url=None) == [ProductUpdated(PID, "Mug", "A mug.", None)]


def test_update_without_a_difference_records_nothing() -> None:
    assert update(given(CREATED), name=" Mug ", description="A mug.", image_url=None) == []
    assert update(given(CREATED)) == []


def test_update_refuses_missing_discontinued_and_invalid() -> None:
    with pytest.raises(ProductNotFound):
        update(None, name="x")
    with pytest.raises(ProductIsDiscontinued):
        update(given(CREATED, ProductDiscontinued(PID)), name="x")
    with pytest.raises(InvalidValue):
        update(given(CREATED), name="")


# -- change_price ------------------------------------------------------------------------


def test_change_price_records_old_and_new_price() -> None:
    events = change_price(given(CREATED), Decimal("9.5"))
    assert events == [ProductPriceChanged(PID, Decimal("12.90"), Decimal("9.50"), "EUR")]


def test_the_same_price_records_nothing() -> None:
    assert change_price(given(CREATED), Decimal("12.9")) == []


def test_change_price_refuses_missing_discontinued_and_invalid() -> None:
    with pytest.raises(ProductNotFound):
        change_price(None, Decimal(1))
    with pytest.raises(ProductIsDiscontinued):
        change_price(given(CREATED, ProductDiscontinued(PID)), Decimal(1))
    with pytest.raises(InvalidValue):
        change_price(given(CREATED), Decimal("1.999"))


# -- revise (PATCH) ----------------------------------------------------------------------


def test_revise_splits_details_and_price() -> None:
    state = given(CREATED)
    changes = ProductChanges(description="Holds 350 ml.", price=Decimal("13.00"))
    assert revise(state, changes) == [
        ProductUpdated(PID, "Mug", "Holds 350 ml.", None),
        ProductPriceChanged(PID, Decimal("12.90"), Decimal("13.00"), "EUR"),
    ]
    assert revise(state, ProductChanges(price=Decimal("1"))) == [
        ProductPriceChanged(PID, Decimal("12.90"), Decimal("1.00"), "EUR")
    ]
    assert revise(state, ProductChanges(name="Mug")) == []
    assert ProductChanges().is_empty and not ProductChanges(image_url=None).is_empty
    assert ProductChanges(name=KEEP).is_empty


def test_revise_refuses_a_discontinued_product_even_without_a_difference() -> None:
    with pytest.raises(ProductIsDiscontinued):
        revise(given(CREATED, ProductDiscontinued(PID)), ProductChanges(name="Mug"))


# -- discontinue -------------------------------------------------------------------------


def test_discontinue_records_product_discontinued_once() -> None:
    assert discontinue(given(CREATED)) == [ProductDiscontinued(PID)]
    assert discontinue(given(CREATED, ProductDiscontinued(PID))) == []


def test_discontinue_refuses_a_missing_product() -> None:
    with pytest.raises(ProductNotFound):
        discontinue(None)


# -- value rules at the edge -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("19.99", "19.99"),
        ("5", "5.00"),
        ("0.5", "0.50"),
        ("007.10", "7.10"),
        ("1000000", "1000000.00"),
        ("1000000.00", "1000000.00"),
    ],
)
def test_prices_parse_from_decimal_strings(text: str, price: str) -> None:
    assert str(parse_price(text)) == price


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "1e3",
        "1E3",
        "1.",
        ".5",
        "1,50",
        "NaN",
        "Infinity",
        "0",
        "0.00",
        "1.999",
        "1.990",
        "1000000.01",
        "9" * 40,
        "١٢",
        "0x10",
    ],
)
def test_prices_refuse_everything_else(text: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_price(text)
    assert refused.value.field == "price"


def test_image_urls() -> None:
    assert valid_image_url(None) is None
    assert valid_image_url("https://cdn.example/x.png?s=1") == "https://cdn.example/x.png?s=1"
    for bad in ("", "ftp://x/y", "https://", "data:image/png;base64,AAA", "/a\\b", "x" * 3000):
        with pytest.raises(InvalidValue):
            valid_image_url(bad)

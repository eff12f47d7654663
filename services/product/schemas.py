"""HTTP bodies and query strings, loaded into the domain's command types.

Value rules live in `domain.rules`; the fields here call them, so a 422 names the same rule
the domain enforces. Prices are accepted only as decimal strings: a JSON number (even an
exact one) is refused, so no client ever learns to send floats for money.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, ClassVar

import marshmallow
from marshmallow import fields, validate

from microshop import fields as kernel_fields
from microshop.openapi import CURRENCY_PATTERN, trimmed_text, whole

from .domain import KEEP, InvalidValue, NewProduct, ProductChanges, rules

__all__ = ["ListQuery", "ListQuerySchema", "NewProductSchema", "ProductChangesSchema"]


MAX_OFFSET = 2**31 - 1
MAX_QUERY = 200


Checked = kernel_fields.Checked

# What each rule accepts, for the API document (tests/unit/test_openapi.py holds each
# pattern to its rule on the same samples).
SKU = {"pattern": whole(r"[A-Za-z0-9._-]{1,64}"), "example": "MUG-01"}
NAME = {"pattern": trimmed_text(rules.NAME_MAX), "description": "trimmed; no control characters"}
DESCRIPTION = {
    "pattern": trimmed_text(
        rules.DESCRIPTION_MAX,
        optional=True,
        control=r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f",
    ),
    "description": "trimmed; line breaks and tabs allowed, no other control characters",
}
# more than 0, at most 1000000, whole cents; digits only (no sign, exponent or spaces)
PRICE = {
    "pattern": whole(r"(?=[0-9.]*[1-9])0*(?:[0-9]{1,6}(?:\.[0-9]{1,2})?|1000000(?:\.0{1,2})?)"),
    "maxLength": 32,
    "example": "19.99",
}
CURRENCY = {"pattern": CURRENCY_PATTERN, "example": "EUR"}
_URL_CHAR = r"[^\s\\\[\]\x00-\x1f\x7f-\x9f]"
IMAGE_URL = {
    "pattern": whole(
        rf"[Hh][Tt][Tt][Pp][Ss]?://(?:(?![/?#]){_URL_CHAR})+{_URL_CHAR}*|/(?!/){_URL_CHAR}*"
    ),
    "minLength": 1,
    "maxLength": rules.IMAGE_URL_MAX,
    "description": "an http(s) URL or a path on this site; null: the generated image",
}


class Price(Checked[Decimal]):
    default_error_messages = {"invalid": 'Must be a decimal string such as "19.99".'}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(rules.parse_price, metadata=PRICE, **kwargs)


class NewProductSchema(marshmallow.Schema):
    """`POST /api/products`: `{sku, name, description?, price, currency?, image_url?}`."""

    sku = Checked(rules.valid_sku, required=True, metadata=SKU)
    name = Checked(rules.valid_name, required=True, metadata=NAME)
    description = Checked(rules.valid_description, load_default="", metadata=DESCRIPTION)
    price = Price(required=True)
    currency = Checked(rules.valid_currency, load_default=rules.DEFAULT_CURRENCY, metadata=CURRENCY)
    image_url = Checked(
        rules.valid_image_url, load_default=None, allow_none=True, metadata=IMAGE_URL
    )

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> NewProduct:
        return NewProduct(**data)


class ProductChangesSchema(marshmallow.Schema):
    """`PATCH /api/products/{id}`: any of name, description, price, image_url (null: back
    to the generated image). Currency and SKU do not change."""

    OPENAPI: ClassVar[dict[str, Any]] = {"minProperties": 1}  # as `not_empty` says

    name = Checked(rules.valid_name, metadata=NAME)
    description = Checked(rules.valid_description, metadata=DESCRIPTION)
    price = Price()
    image_url = Checked(rules.valid_image_url, allow_none=True, metadata=IMAGE_URL)

    @marshmallow.validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise marshmallow.ValidationError(
                "give at least one of name, description, price, image_url", "_schema"
            )

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ProductChanges:
        return ProductChanges(
            name=data.get("name", KEEP),
            description=data.get("description", KEEP),
            image_url=data.get("image_url", KEEP),
            price=data.get("price", KEEP),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ListQuery:
    """`GET /api/products?q=&limit=&offset=` after validation."""

    q: str | None
    limit: int
    offset: int


def _query_text(value: str) -> str | None:
    text = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidValue("q", "must not contain control characters")
    if len(text) > MAX_QUERY:
        raise InvalidValue("q", f"must be at most {MAX_QUERY} characters")
    return text or None


class ListQuerySchema(marshmallow.Schema):
    """The listing's query string; parameters it does not know are ignored."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    q = Checked(
        _query_text,
        load_default=None,
        metadata={
            "description": "words in the name or description (trimmed; blank: everything)",
            "pattern": trimmed_text(
                MAX_QUERY, optional=True, control=r"\x00-\x1f\x7f", any_space=True
            ),
        },
    )
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ListQuery:
        return ListQuery(**data)

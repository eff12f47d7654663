"""HTTP bodies and query strings, loaded into the domain's command types.

Value rules live in `domain.rules`; the fields here call them, so a 422 names the same rule
the domain enforces. Prices are accepted only as decimal strings: a JSON number (even an
exact one) is refused, so no client ever learns to send floats for money.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import marshmallow
from marshmallow import fields, validate

from microshop import fields as kernel_fields

from .domain import KEEP, InvalidValue, NewProduct, ProductChanges, rules

__all__ = ["ListQuery", "ListQuerySchema", "NewProductSchema", "ProductChangesSchema"]


MAX_OFFSET = 2**31 - 1
MAX_QUERY = 200


Checked = kernel_fields.Checked


class Price(Checked[Decimal]):
    default_error_messages = {"invalid": 'Must be a decimal string such as "19.99".'}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(rules.parse_price, **kwargs)


class NewProductSchema(marshmallow.Schema):
    """`POST /api/products`: `{sku, name, description?, price, currency?, image_url?}`."""

    sku = Checked(rules.valid_sku, required=True)
    name = Checked(rules.valid_name, required=True)
    description = Checked(rules.valid_description, load_default="")
    price = Price(required=True)
    currency = Checked(rules.valid_currency, load_default=rules.DEFAULT_CURRENCY)
    image_url = Checked(rules.valid_image_url, load_default=None, allow_none=True)

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> NewProduct:
        return NewProduct(**data)


class ProductChangesSchema(marshmallow.Schema):
    """`PATCH /api/products/{id}`: any of name, description, price, image_url (null: back
    to the generated image). Currency and SKU do not change."""

    name = Checked(rules.valid_name)
    description = Checked(rules.valid_description)
    price = Price()
    image_url = Checked(rules.valid_image_url, allow_none=True)

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
        _query_text, load_default=None, metadata={"description": "words in the name or description"}
    )
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))

    @marshmallow.post_load
    def make(self, data: dict[str, Any], **kwargs: Any) -> ListQuery:
        return ListQuery(**data)

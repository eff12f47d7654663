"""Money as decimal strings: the one set of rules the services' domains apply to amounts.

Pure (no I/O imports), so `domain/` packages may use it. A `MoneyRule` names the field it
checks (`price`, `amount`), so its refusals are `InvalidValue`s of that field.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

from .domain import InvalidValue

__all__ = ["MoneyRule", "check_money", "parse_money", "valid_currency"]

_CENT = Decimal("0.01")
_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TEXT_MAX = 32
_CURRENCY = re.compile(r"[A-Z]{3}")


def check_money(value: Decimal, maximum: Decimal) -> Decimal:
    """Greater than 0, whole cents, at most `maximum`; returned with two decimals
    (`ValueError` otherwise)."""
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value <= 0:
        raise ValueError("must be greater than 0")
    if value > maximum:
        raise ValueError(f"must be at most {maximum}")
    if value != value.quantize(_CENT):
        raise ValueError("must have at most 2 decimal places")
    return value.quantize(_CENT)


def parse_money(text: str, maximum: Decimal, example: str) -> Decimal:
    """An amount from its decimal-string form (`"19.99"`, `"5"`): no signs, exponents or
    spaces, at most two digits after the point (`ValueError` otherwise)."""
    if len(text) > _TEXT_MAX or not _TEXT.fullmatch(text):
        raise ValueError(f'must be a decimal string such as "{example}"')
    if len(text.partition(".")[2]) > 2:
        raise ValueError("must have at most 2 decimal places")
    return check_money(Decimal(text), maximum)


@dataclasses.dataclass(frozen=True, slots=True)
class MoneyRule:
    """The rule of one money field: positive, whole cents, at most `maximum`."""

    field: str
    maximum: Decimal
    example: str

    def check(self, value: Decimal) -> Decimal:
        """`value` with two decimals, or `InvalidValue` of this field."""
        try:
            return check_money(value, self.maximum)
        except ValueError as exc:
            raise InvalidValue(self.field, str(exc)) from None

    def parse(self, text: str) -> Decimal:
        """The amount a decimal string states, or `InvalidValue` of this field."""
        try:
            return parse_money(text, self.maximum, self.example)
        except ValueError as exc:
            raise InvalidValue(self.field, str(exc)) from None


def valid_currency(value: str, field: str = "currency") -> str:
    """An ISO 4217 code: three uppercase letters."""
    if not _CURRENCY.fullmatch(value):
        raise InvalidValue(field, "must be 3 uppercase letters (ISO 4217), e.g. EUR")
    return value

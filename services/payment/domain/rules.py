"""Value rules of a payment request, each returning the normalised value or raising
`InvalidValue`. The HTTP schema calls the same functions, so a rule is written once."""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import InvalidValue

__all__ = ["MAX_AMOUNT", "MAX_NUMBER", "parse_amount", "valid_amount", "valid_currency"]

MAX_AMOUNT = Decimal("999999999999.99")
MAX_NUMBER = 2**31 - 1
"""Largest round or attempt number (they count retries; anything near this is a bug)."""

_CENT = Decimal("0.01")
_AMOUNT_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_AMOUNT_TEXT_MAX = 32
_CURRENCY = re.compile(r"[A-Z]{3}")


def valid_amount(value: Decimal) -> Decimal:
    """Greater than 0, whole cents, at most `MAX_AMOUNT`; returned with two decimals."""
    if not value.is_finite():
        raise InvalidValue("amount", "must be a finite amount")
    if value <= 0:
        raise InvalidValue("amount", "must be greater than 0")
    if value > MAX_AMOUNT:
        raise InvalidValue("amount", f"must be at most {MAX_AMOUNT}")
    if value != value.quantize(_CENT):
        raise InvalidValue("amount", "must have at most 2 decimal places")
    return value.quantize(_CENT)


def parse_amount(text: str) -> Decimal:
    """An amount from its decimal-string form (`"12.34"`, `"5"`): no signs, exponents,
    spaces or more than two decimals."""
    if len(text) > _AMOUNT_TEXT_MAX or not _AMOUNT_TEXT.fullmatch(text):
        raise InvalidValue("amount", 'must be a decimal string such as "12.34"')
    if len(text.partition(".")[2]) > 2:
        raise InvalidValue("amount", "must have at most 2 decimal places")
    return valid_amount(Decimal(text))


def valid_currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise InvalidValue("currency", "must be 3 uppercase letters (ISO 4217), e.g. EUR")
    return value

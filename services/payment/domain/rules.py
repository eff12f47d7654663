"""Value rules of a payment request, each returning the normalised value or raising
`InvalidValue`. The HTTP schema calls the same functions, so a rule is written once."""

from __future__ import annotations

import re
from decimal import Decimal

from microshop import money

from .errors import InvalidValue

__all__ = ["MAX_AMOUNT", "MAX_NUMBER", "parse_amount", "valid_amount", "valid_currency"]

MAX_AMOUNT = Decimal("999999999999.99")
MAX_NUMBER = 2**31 - 1
"""Largest round or attempt number (they count retries; anything near this is a bug)."""

_CURRENCY = re.compile(r"[A-Z]{3}")


def valid_amount(value: Decimal) -> Decimal:
    """Greater than 0, whole cents, at most `MAX_AMOUNT`; returned with two decimals."""
    try:
        return money.check_money(value, MAX_AMOUNT)
    except ValueError as exc:
        raise InvalidValue("amount", str(exc)) from None


def parse_amount(text: str) -> Decimal:
    """An amount from its decimal-string form (`"12.34"`, `"5"`): no signs, exponents,
    spaces or more than two decimals."""
    try:
        return money.parse_money(text, MAX_AMOUNT, "12.34")
    except ValueError as exc:
        raise InvalidValue("amount", str(exc)) from None


def valid_currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise InvalidValue("currency", "must be 3 uppercase letters (ISO 4217), e.g. EUR")
    return value

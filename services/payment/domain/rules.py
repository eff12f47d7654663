"""Value rules of a payment request, each returning the normalised value or raising
`InvalidValue`. The HTTP schema calls the same functions, so a rule is written once."""

from __future__ import annotations

from decimal import Decimal

from microshop import money

__all__ = ["AMOUNT", "MAX_AMOUNT", "MAX_NUMBER", "parse_amount", "valid_amount", "valid_currency"]

MAX_AMOUNT = Decimal("999999999999.99")
MAX_NUMBER = 2**31 - 1
"""Largest round or attempt number (they count retries; anything near this is a bug)."""

AMOUNT = money.MoneyRule("amount", MAX_AMOUNT, "12.34")

valid_amount = AMOUNT.check
"""Greater than 0, whole cents, at most `MAX_AMOUNT`; returned with two decimals."""
parse_amount = AMOUNT.parse
"""An amount from its decimal-string form (`"12.34"`, `"5"`): no signs, exponents, spaces
or more than two decimals."""
valid_currency = money.valid_currency

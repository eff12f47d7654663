"""Money as decimal strings: the one set of rules the services' domains apply to amounts.

Pure (no I/O imports), so `domain/` packages may use it. Refusals are `ValueError`s whose
text the domain puts under its own field name.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["check_money", "parse_money"]

_CENT = Decimal("0.01")
_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TEXT_MAX = 32


def check_money(value: Decimal, maximum: Decimal) -> Decimal:
    """Greater than 0, whole cents, at most `maximum`; returned with two decimals."""
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
    spaces, at most two digits after the point."""
    if len(text) > _TEXT_MAX or not _TEXT.fullmatch(text):
        raise ValueError(f'must be a decimal string such as "{example}"')
    if len(text.partition(".")[2]) > 2:
        raise ValueError("must have at most 2 decimal places")
    return check_money(Decimal(text), maximum)

"""The catalog's value rules, each a function that returns the normalised value or raises
`InvalidValue`. The HTTP schemas call the same functions, so a rule is written once."""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from decimal import Decimal

from microshop import money

from .errors import InvalidValue

__all__ = [
    "DEFAULT_CURRENCY",
    "DESCRIPTION_MAX",
    "IMAGE_URL_MAX",
    "MAX_PRICE",
    "NAME_MAX",
    "PRICE",
    "SKU_MAX",
    "parse_price",
    "valid_currency",
    "valid_description",
    "valid_image_url",
    "valid_name",
    "valid_price",
    "valid_sku",
]

SKU_MAX = 64
NAME_MAX = 200
DESCRIPTION_MAX = 5000
IMAGE_URL_MAX = 2048
MAX_PRICE = Decimal(1_000_000)
DEFAULT_CURRENCY = "EUR"

_SKU = re.compile(r"[A-Za-z0-9._-]+")
_LINE_BREAKS = frozenset("\n\r\t")


def _printable(field: str, value: str, *, allow: frozenset[str] = frozenset()) -> None:
    """Refuse control characters and lone surrogates: Postgres and JSON cannot store
    NUL or unpaired surrogates, and the rest only hide mischief in names."""
    for char in value:
        if char not in allow and unicodedata.category(char) in ("Cc", "Cs"):
            raise InvalidValue(field, "must not contain control characters")


def valid_sku(value: str) -> str:
    """1 to 64 of `A-Z a-z 0-9 - _ .`; kept exactly as given (SKUs are case-sensitive)."""
    if not 1 <= len(value) <= SKU_MAX or not _SKU.fullmatch(value):
        raise InvalidValue("sku", f"1 to {SKU_MAX} of the characters A-Z a-z 0-9 - _ .")
    return value


def valid_name(value: str) -> str:
    """1 to 200 characters after trimming surrounding whitespace; any script is welcome."""
    _printable("name", value)
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidValue("name", f"must be 1 to {NAME_MAX} characters (not only spaces)")
    return name


def valid_description(value: str) -> str:
    """At most 5000 characters after trimming; line breaks and tabs allowed."""
    _printable("description", value, allow=_LINE_BREAKS)
    description = value.strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidValue("description", f"must be at most {DESCRIPTION_MAX} characters")
    return description


valid_currency = money.valid_currency


def valid_image_url(value: str | None) -> str | None:
    """None (the generated image), an absolute http(s) URL or a path on this site (no
    whitespace, backslashes or square brackets: no IPv6 literal hosts)."""
    if value is None:
        return None
    message = "must be an http(s) URL or a path starting with /"
    if not 1 <= len(value) <= IMAGE_URL_MAX:
        raise InvalidValue("image_url", f"must be 1 to {IMAGE_URL_MAX} characters")
    if any(c.isspace() or c in "\\[]" or unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidValue("image_url", message)
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        raise InvalidValue("image_url", message) from None
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    if not parts.scheme and not parts.netloc and value.startswith("/"):
        return value  # a path on this site (not `//host`, which urlsplit reads as a netloc)
    raise InvalidValue("image_url", message)


PRICE = money.MoneyRule("price", MAX_PRICE, "19.99")

valid_price = PRICE.check
"""Greater than 0, at most 1000000, whole cents; returned with exactly two decimals."""
parse_price = PRICE.parse
"""A price from its decimal-string form (`"19.99"`, `"5"`); no signs, exponents or spaces,
at most two digits after the point."""

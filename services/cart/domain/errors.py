"""Why the cart refuses a change: one typed error per broken rule, each with a stable code."""

from __future__ import annotations

from typing import Any

from microshop import domain as kernel
from microshop.domain import Kind

__all__ = [
    "CurrencyMismatch",
    "DomainError",
    "ItemNotInCart",
    "QuantityOutOfRange",
    "UnknownProduct",
]


class DomainError(kernel.DomainError):
    """A decision the cart refuses; `code` is stable and machine-readable."""

    kind, code = Kind.INVALID, "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, details=details)


class QuantityOutOfRange(DomainError):
    """A line would hold fewer than 1 or more than 99 units."""

    code = "quantity_out_of_range"

    def __init__(self, product_id: str, quantity: int, maximum: int) -> None:
        super().__init__(
            f"a cart line holds 1..{maximum} units; product {product_id} would have {quantity}",
            product_id=product_id,
            quantity=quantity,
            maximum=maximum,
        )


class CurrencyMismatch(DomainError):
    """The product is priced in another currency than the cart (one currency per cart)."""

    code = "currency_mismatch"

    def __init__(self, product_id: str, cart_currency: str, currency: str) -> None:
        super().__init__(
            f"the cart is in {cart_currency}; product {product_id} is priced in {currency}",
            product_id=product_id,
            cart_currency=cart_currency,
            currency=currency,
        )


class ItemNotInCart(DomainError):
    """The cart has no line for the product."""

    kind, code = Kind.NOT_FOUND, "item_not_in_cart"

    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} is not in the cart", product_id=product_id)


class UnknownProduct(DomainError):
    """The catalog has no such product, or no longer sells it."""

    code = "unknown_product"

    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} does not exist or is no longer sold")
        self.details = {"product_id": [f"no active product {product_id}"]}

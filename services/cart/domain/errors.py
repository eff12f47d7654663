"""Why the cart refuses a change: one typed error per broken rule, each with a stable code."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["CurrencyMismatch", "DomainError", "ItemNotInCart", "QuantityOutOfRange"]


class DomainError(Exception):
    """A decision the cart refuses; `code` is stable and machine-readable."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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

    code = "item_not_in_cart"

    def __init__(self, product_id: str) -> None:
        super().__init__(f"product {product_id} is not in the cart", product_id=product_id)

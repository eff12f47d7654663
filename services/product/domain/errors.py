"""Why a product decision is refused: one exception type per reason a caller may act on."""

from __future__ import annotations

import uuid

__all__ = [
    "DomainError",
    "InvalidValue",
    "ProductAlreadyExists",
    "ProductIsDiscontinued",
    "ProductNotFound",
    "SkuTaken",
]


class DomainError(Exception):
    """Base class of every refusal of the product rules."""


class InvalidValue(DomainError):
    """A field's value breaks a catalog rule (a price with three decimals, an empty name)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ProductNotFound(DomainError):
    """No product has this id."""

    def __init__(self, product_id: uuid.UUID | None = None) -> None:
        self.product_id = product_id
        super().__init__(f"no product {product_id}" if product_id else "no such product")


class ProductAlreadyExists(DomainError):
    """A product with this id was created before."""

    def __init__(self, product_id: uuid.UUID) -> None:
        self.product_id = product_id
        super().__init__(f"product {product_id} already exists")


class ProductIsDiscontinued(DomainError):
    """The product was discontinued; it can no longer change."""

    def __init__(self, product_id: uuid.UUID) -> None:
        self.product_id = product_id
        super().__init__(f"product {product_id} is discontinued")


class SkuTaken(DomainError):
    """Another product already has this SKU (SKUs stay reserved after discontinuation)."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"SKU {sku!r} is taken")

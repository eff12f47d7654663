"""Why a product decision is refused: one exception type per reason a caller may act on.

Each is a `microshop.domain.DomainError` with a kind and a code, which the kernel answers
(404 not found, 409 conflicts, 422 for a value breaking a rule).
"""

from __future__ import annotations

import uuid

from microshop.domain import ConflictError, DomainError, InvalidValue, NotFoundError

__all__ = [
    "DomainError",
    "InvalidValue",
    "ProductAlreadyExists",
    "ProductIsDiscontinued",
    "ProductNotFound",
    "SkuTaken",
]


class ProductNotFound(NotFoundError):
    """No product has this id."""

    def __init__(self, product_id: uuid.UUID | None = None) -> None:
        super().__init__(f"no product {product_id}" if product_id else "no such product")
        self.product_id = product_id


class ProductAlreadyExists(ConflictError):
    """A product with this id was created before."""

    code = "product_exists"

    def __init__(self, product_id: uuid.UUID) -> None:
        super().__init__("the product already exists")
        self.product_id = product_id


class ProductIsDiscontinued(ConflictError):
    """The product was discontinued; it can no longer change."""

    code = "product_discontinued"

    def __init__(self, product_id: uuid.UUID) -> None:
        super().__init__(f"product {product_id} is discontinued and cannot change")
        self.product_id = product_id


class SkuTaken(ConflictError):
    """Another product already has this SKU (SKUs stay reserved after discontinuation)."""

    code = "sku_taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"SKU {sku!r} is taken", details={"sku": sku})
        self.sku = sku

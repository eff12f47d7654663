"""Why a product decision is refused: one exception type per reason a caller may act on.

Each is a `DomainError` of the catalog, a `microshop.domain.DomainError` with a kind and a
code that the kernel answers: 404 `not_found`, 409 with the refusal's code (`rejected` for
one without a code of its own). A value breaking a rule is the kernel's `InvalidValue`
(422, details `{field: [message]}`), shared with every other service.
"""

from __future__ import annotations

import uuid

from microshop import domain as kernel
from microshop.domain import InvalidValue, Kind

__all__ = [
    "DomainError",
    "InvalidValue",
    "ProductAlreadyExists",
    "ProductIsDiscontinued",
    "ProductNotFound",
    "SkuTaken",
]


class DomainError(kernel.DomainError):
    """A decision the catalog refuses (409 `rejected` unless a subclass says otherwise)."""

    kind, code = Kind.CONFLICT, "rejected"


class ProductNotFound(DomainError):
    """No product has this id."""

    kind, code = Kind.NOT_FOUND, "not_found"

    def __init__(self, product_id: uuid.UUID | None = None) -> None:
        super().__init__(f"no product {product_id}" if product_id else "no such product")
        self.product_id = product_id


class ProductAlreadyExists(DomainError):
    """A product with this id was created before."""

    code = "product_exists"

    def __init__(self, product_id: uuid.UUID) -> None:
        super().__init__("the product already exists")
        self.product_id = product_id


class ProductIsDiscontinued(DomainError):
    """The product was discontinued; it can no longer change."""

    code = "product_discontinued"

    def __init__(self, product_id: uuid.UUID) -> None:
        super().__init__(f"product {product_id} is discontinued and cannot change")
        self.product_id = product_id


class SkuTaken(DomainError):
    """Another product already has this SKU (SKUs stay reserved after discontinuation)."""

    code = "sku_taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"SKU {sku!r} is taken", details={"sku": sku})
        self.sku = sku

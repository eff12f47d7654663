"""product-service as the cart sees it: look a product up before it goes into a cart.

Over the kernel's `ServiceClient`: trouble reaching product-service is its 503/504/502
for the caller, an answer that is not a product is product-service's bug (502), and a
product it does not know, or no longer sells, is the cart's refusal (`UnknownProduct`,
422).
"""

from __future__ import annotations

from typing import Protocol

from microshop.client import ServiceClient, ServiceFailed

from .domain import UnknownProduct
from .schemas import Product, ProductSchema

__all__ = ["ProductService", "Products"]

_PRODUCT = ProductSchema()
# product-service answers these for an id that names no product (404), or no valid id.
_NO_SUCH_PRODUCT = frozenset({400, 404, 422})


class Products(Protocol):
    """Where a cart line's product comes from (a fake in tests, product-service in the app)."""

    async def sold(self, product_id: str) -> Product: ...


class ProductService:
    """Products from product-service's public API."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def sold(self, product_id: str) -> Product:
        """The active product `product_id` (its `id` is product-service's spelling of it).

        `product_id` is one safe path segment: the request schema made sure of that.
        """
        reply = await self._client.get(f"/api/products/{product_id}")
        if reply.status in _NO_SUCH_PRODUCT:
            raise UnknownProduct(product_id)
        if reply.status != 200:
            raise ServiceFailed(
                "product", f"product-service answered {reply.status} for {product_id}"
            )
        product: Product = self._client.load(reply, _PRODUCT)
        if not product.active:
            raise UnknownProduct(product_id)
        return product

"""product-service as the cart sees it: one call that looks a product up.

Failures are typed by what went wrong upstream, so the view can answer 422 for an unknown
product and 502/503/504 for upstream trouble, never 500.
"""

from __future__ import annotations

import aiohttp
import marshmallow

from .schemas import Product, ProductSchema

__all__ = [
    "CatalogError",
    "CatalogFailed",
    "CatalogTimeout",
    "CatalogUnavailable",
    "fetch_product",
]

_PRODUCT = ProductSchema()
# product-service answers these for an id that names no product (404), or no valid id.
_NO_SUCH_PRODUCT = frozenset({400, 404, 422})


class CatalogError(Exception):
    """product-service could not answer the question."""


class CatalogUnavailable(CatalogError):
    """product-service cannot be reached (connection refused, no route, DNS)."""


class CatalogTimeout(CatalogError):
    """product-service did not answer in time."""


class CatalogFailed(CatalogError):
    """product-service answered, but with an error or something that is not a product."""


async def fetch_product(
    session: aiohttp.ClientSession, base_url: str, product_id: str
) -> Product | None:
    """The product `product_id` from product-service, or None when there is no such product.

    `product_id` must be one safe path segment (the request schema makes sure of that). The
    answer's `id` is product-service's canonical spelling of it.
    """
    url = f"{base_url}/api/products/{product_id}"
    try:  # the app's client adds the correlation id and trace context
        async with session.get(url, allow_redirects=False) as resp:
            if resp.status in _NO_SUCH_PRODUCT:
                return None
            if resp.status != 200:
                raise CatalogFailed(f"product-service answered {resp.status} for {product_id}")
            body = await resp.json(content_type=None)
    except aiohttp.ClientConnectorError as exc:
        raise CatalogUnavailable(f"product-service is unreachable: {exc}") from exc
    except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
        raise CatalogTimeout("product-service did not answer in time") from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise CatalogFailed(f"product-service failed: {type(exc).__name__}: {exc}") from exc
    try:
        product: Product = _PRODUCT.load(body)
    except marshmallow.ValidationError as exc:
        raise CatalogFailed(f"product-service sent an invalid product: {exc.messages}") from exc
    return product

"""The product catalog's rules, free of I/O: events, the aggregate as a fold, decisions.

Nothing here imports aiohttp, asyncpg, aiormq or marshmallow; the service's adapters
(`handlers`, `queries`, `views`) load and store what these functions decide.
"""

from .errors import (
    DomainError,
    InvalidValue,
    ProductAlreadyExists,
    ProductIsDiscontinued,
    ProductNotFound,
    SkuTaken,
)
from .events import (
    ProductCreated,
    ProductDiscontinued,
    ProductEvent,
    ProductPriceChanged,
    ProductUpdated,
)
from .product import (
    KEEP,
    Keep,
    NewProduct,
    Product,
    ProductChanges,
    apply,
    change_price,
    create,
    discontinue,
    fold,
    revise,
    update,
)

__all__ = [
    "KEEP",
    "DomainError",
    "InvalidValue",
    "Keep",
    "NewProduct",
    "Product",
    "ProductAlreadyExists",
    "ProductChanges",
    "ProductCreated",
    "ProductDiscontinued",
    "ProductEvent",
    "ProductIsDiscontinued",
    "ProductNotFound",
    "ProductPriceChanged",
    "ProductUpdated",
    "SkuTaken",
    "apply",
    "change_price",
    "create",
    "discontinue",
    "fold",
    "revise",
    "update",
]

"""The read side: the `products` read model, by id and as a searchable, paged list."""

from __future__ import annotations

import dataclasses
import uuid

from eventstore.pg import Pool

from .domain import Product
from .projections import PRODUCTS, product_from_row

__all__ = ["Page", "get_product", "like_pattern", "list_products"]

_COLUMNS = ", ".join(PRODUCTS.columns)

_GET = f"SELECT {_COLUMNS} FROM {PRODUCTS.table} WHERE id = $1"

# Two statements rather than `$1 IS NULL OR ...`, so a cached generic plan can still use
# the trigram indexes when searching; patterns come from `like_pattern` (backslash escapes).
_MATCH = "active AND (name ILIKE $3 OR description ILIKE $3)"
_LIST = f"""
SELECT {_COLUMNS}, count(*) OVER () AS total FROM {PRODUCTS.table}
WHERE {{where}}
ORDER BY name, id
LIMIT $1 OFFSET $2"""
_LIST_ALL = _LIST.format(where="active")
_LIST_MATCHING = _LIST.format(where=_MATCH)
_COUNT_ALL = f"SELECT count(*) FROM {PRODUCTS.table} WHERE active"
_COUNT_MATCHING = f"SELECT count(*) FROM {PRODUCTS.table} WHERE {_MATCH.replace('$3', '$1')}"


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    items: list[Product]
    total: int


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, with `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def get_product(pool: Pool, product_id: uuid.UUID) -> Product | None:
    row = await pool.fetchrow(_GET, product_id)
    return None if row is None else product_from_row(dict(row))


async def list_products(pool: Pool, *, q: str | None, limit: int, offset: int) -> Page:
    """Active products matching `q` (name or description, case-insensitive), by name."""
    count_args: tuple[str, ...]
    if q:
        pattern = like_pattern(q)
        rows = await pool.fetch(_LIST_MATCHING, limit, offset, pattern)
        count_sql, count_args = _COUNT_MATCHING, (pattern,)
    else:
        rows = await pool.fetch(_LIST_ALL, limit, offset)
        count_sql, count_args = _COUNT_ALL, ()
    if rows:
        total = int(rows[0]["total"])
    elif offset:  # past the end: the window count has no row to ride on
        total = int(await pool.fetchval(count_sql, *count_args))
    else:
        total = 0
    return Page([product_from_row(dict(r)) for r in rows], total)

"""The shop's pages: catalog with search and paging, product pages, order status.

They work without JavaScript: search is a GET form, paging is links, and an order whose
status can still change refreshes itself with `<meta http-equiv="refresh">`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from . import session
from .errors import PageError, Redirect
from .render import page, pages_count, render
from .upstream import Reply, call

__all__ = ["PER_PAGE", "REFRESH_SECONDS", "routes"]

routes = web.RouteTableDef()

PER_PAGE = 12
MAX_QUERY = 200
REFRESH_SECONDS = {"PENDING_PAYMENT": 2, "PAYMENT_FAILED": 15}
"""Statuses that can still change, and how often their page reloads itself."""


def _uuid(request: web.Request, what: str) -> str:
    """The `{id}` of the path; what is not a UUID names nothing (404 without asking)."""
    try:
        return str(uuid.UUID(request.match_info["id"]))
    except ValueError:
        raise PageError(404, f"No such {what}", f"This is not a valid {what} id.") from None


def _page_number(raw: str | None) -> int:
    try:
        number = int(raw or "1")
    except ValueError:
        return 1
    return min(max(number, 1), 100_000)


@routes.get("/", name="catalog")
@page
async def catalog(request: web.Request) -> web.Response:
    q = " ".join(request.query.get("q", "").split())[:MAX_QUERY]
    number = _page_number(request.query.get("page"))
    params = {"limit": str(PER_PAGE), "offset": str((number - 1) * PER_PAGE)}
    if q:
        params["q"] = q
    answer = await call(request, "product", "GET", "/api/products", params=params)
    if answer.status == 422:
        raise PageError(400, "That search did not work", answer.error_message)
    if not answer.ok or not isinstance(answer.body, dict):
        raise PageError(502, "The catalog is unavailable", answer.error_message)
    total = int(answer.body.get("total", 0))
    pages = pages_count(total, PER_PAGE)

    def link(to: int) -> str:
        query = {"q": q} if q else {}
        if to > 1:
            query["page"] = str(to)
        return "/" + ("?" + urlencode(query) if query else "")

    return await render(
        request,
        "catalog.html",
        {
            "products": answer.body.get("items", []),
            "q": q,
            "total": total,
            "page": number,
            "pages": pages,
            "prev_url": link(number - 1) if number > 1 else None,
            "next_url": link(number + 1) if number < pages else None,
        },
        title="Search: " + q if q else "Catalog",
    )


@routes.get("/products/{id}", name="product")
@page
async def product(request: web.Request) -> web.Response:
    product_id = _uuid(request, "product")
    answer = await call(request, "product", "GET", f"/api/products/{product_id}")
    if answer.status == 404:
        raise PageError(404, "No such product", "It may have been removed from the catalog.")
    if not answer.ok or not isinstance(answer.body, dict):
        raise PageError(502, "The catalog is unavailable", answer.error_message)
    return await render(
        request,
        "product.html",
        {"product": answer.body},
        title=str(answer.body.get("name", "Product")),
    )


@routes.get("/orders", name="orders")
@page
async def orders(request: web.Request) -> web.Response:
    await session.require_user(request)
    answer = await call(request, "order", "GET", "/api/orders", token=session.access_token(request))
    _check_order_answer(request, answer)
    return await render(
        request, "orders.html", {"orders": answer.body.get("items", [])}, title="Your orders"
    )


@routes.get("/orders/{id}", name="order")
@page
async def order(request: web.Request) -> web.Response:
    """The order's status page: its owner (or an admin) sees it; for everyone else it is a
    404, as the order-service decides. With `?as_of=T` it also shows the state the order
    was in at T (each timeline entry links to its own)."""
    await session.require_user(request)
    order_id, token = _uuid(request, "order"), session.access_token(request)
    answer = await call(request, "order", "GET", f"/api/orders/{order_id}", token=token)
    _check_order_answer(request, answer)
    timeline = await call(request, "order", "GET", f"/api/orders/{order_id}/events", token=token)
    _check_order_answer(request, timeline)
    as_of = request.query.get("as_of")
    body: dict[str, Any] = answer.body
    return await render(
        request,
        "order.html",
        {
            "order": body,
            "events": timeline.body.get("items", []),
            "refresh": REFRESH_SECONDS.get(str(body.get("status"))),
            "as_of": as_of,
            "past": None if as_of is None else await _order_as_of(request, order_id, as_of, token),
        },
        title=f"Order {order_id[:8]}",
    )


async def _order_as_of(
    request: web.Request, order_id: str, as_of: str, token: str
) -> dict[str, Any] | None:
    """The order as it was at `as_of` (each timeline entry links here with its event's exact
    `recorded_at`); None when it did not exist yet. Whoever gets here may see the order."""
    params = {"as_of": as_of}
    answer = await call(
        request, "order", "GET", f"/api/orders/{order_id}", params=params, token=token
    )
    if answer.status == 422:
        why = answer.error_details.get("as_of")
        raise PageError(
            400,
            "That is not a valid time",
            " ".join(map(str, why)) if isinstance(why, list) else answer.error_message,
        )
    if answer.status == 404:
        return None
    _check_order_answer(request, answer)
    past: dict[str, Any] = answer.body
    return past


def _check_order_answer(request: web.Request, answer: Reply) -> None:
    if answer.status == 401:  # the token ran out between our check and theirs
        raise Redirect(session.login_url(request), status=302)
    if answer.status == 404:
        raise PageError(404, "No such order", "There is no order with this id on your account.")
    if not answer.ok or not isinstance(answer.body, dict):
        raise PageError(502, "The order service is unavailable", answer.error_message)

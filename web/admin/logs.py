"""Operator page of the central logs: a search form over log-service's `GET /api/logs`.

The search runs with the admin's own token, as the API would for any admin client. When
log-service is down the page still renders (the form, and what is wrong) with a 5xx status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from aiohttp import web

from microshop import context
from microshop.config import SERVICE_PORTS

from .. import session
from ..errors import PageError
from ..render import page, render
from ..upstream import call

__all__ = ["LEVELS", "routes"]

routes = web.RouteTableDef()

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_FIELDS = ("service", "level", "correlation_id", "request_id", "q", "since", "until", "limit")


@dataclasses.dataclass(frozen=True, slots=True)
class Search:
    """The form's values, as typed (for re-rendering), and what is wrong with them."""

    values: dict[str, str]
    errors: dict[str, str]

    def params(self) -> dict[str, str]:
        """The query string for log-service: the filled fields only."""
        return {k: v for k, v in self.values.items() if v}


def _timestamp(raw: str) -> str | None:
    """ISO 8601 as a `datetime-local` field sends it (no zone: UTC); None if not a time."""
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def parse(query: Any) -> Search:
    values = {name: str(query.get(name, "")).strip() for name in _FIELDS}
    errors: dict[str, str] = {}
    if values["service"] and not _SERVICE.match(values["service"]):
        errors["service"] = "Not a service name."
    if values["level"]:
        values["level"] = values["level"].upper()
        if values["level"] not in LEVELS:
            errors["level"] = f"One of {', '.join(LEVELS)}."
    for name in ("correlation_id", "request_id"):
        if values[name] and context.valid_id(values[name]) is None:
            errors[name] = "Letters, digits and . _ : - only."
    if len(values["q"]) > 200:
        errors["q"] = "At most 200 characters."
    for name in ("since", "until"):
        if values[name]:
            stamp = _timestamp(values[name])
            if stamp is None:
                errors[name] = "A date and time such as 2024-05-01T12:30."
    if values["limit"]:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_LIMIT:
            errors["limit"] = f"A number from 1 to {MAX_LIMIT}."
    else:
        values["limit"] = str(DEFAULT_LIMIT)
    return Search(values, errors)


@routes.get("/admin/logs", name="admin_logs")
@page
async def logs_page(request: web.Request) -> web.Response:
    await session.require_admin(request)
    search = parse(request.query)
    values: dict[str, Any] = {
        "search": search,
        "levels": LEVELS,
        "services": sorted(SERVICE_PORTS),
        "items": None,
        "unavailable": None,
    }
    if search.errors:
        return await render(request, "admin/logs.html", values, status=422, title="Logs")
    params = search.params()
    for name in ("since", "until"):
        if name in params:
            params[name] = _timestamp(params[name]) or params[name]
    try:
        answer = await call(
            request, "log", "GET", "/api/logs", params=params, token=session.access_token(request)
        )
    except PageError as down:
        values["unavailable"] = down
        return await render(request, "admin/logs.html", values, status=down.status, title="Logs")
    if answer.status == 422:
        details = answer.error_details
        errors = {
            k: "; ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in details.items()
        }
        values["search"] = Search(search.values, errors or {"_": answer.error_message})
        return await render(request, "admin/logs.html", values, status=422, title="Logs")
    if not answer.ok or not isinstance(answer.body, dict):
        values["unavailable"] = PageError(
            502, "The log-service is unavailable", f"It answered {answer.error_message}."
        )
        return await render(request, "admin/logs.html", values, status=502, title="Logs")
    items = answer.body.get("items")
    values["items"] = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    return await render(request, "admin/logs.html", values, title="Logs")

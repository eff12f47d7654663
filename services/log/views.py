"""GET /api/logs: the central log, for admins."""

from __future__ import annotations

from aiohttp import web

from microshop.appkeys import POOL
from microshop.auth import require_admin
from microshop.http import json_response, read_query
from microshop.openapi import documented

from .openapi import LogListSchema
from .schemas import LogQuerySchema
from .store import LogQuery, search

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/logs")
@documented(
    response=LogListSchema,
    errors=(401, 403, 422),
    query=LogQuerySchema,
    rules="until must be after since",
)
async def list_logs(request: web.Request) -> web.Response:
    """Search the central logs.

    Stored log lines matching every filter given, newest first (admin only)."""
    await require_admin(request)
    query = read_query(request, LogQuerySchema(), LogQuery)
    return json_response({"items": await search(request.app[POOL], query)})

"""auth-service routes for personal data: a person's export, and forgetting a person."""

from __future__ import annotations

from aiohttp import web

from microshop import context
from microshop.appkeys import STORE, VAULT
from microshop.auth import VERIFIER, authenticate, require_admin
from microshop.client import ServiceClient
from microshop.errors import Unauthorized
from microshop.http import json_response
from microshop.openapi import documented

from .export import Upstream, export
from .forgetting import forget
from .openapi import ExportSchema, ForgottenSchema

__all__ = ["privacy_routes"]

privacy_routes = web.RouteTableDef()


@privacy_routes.get("/api/auth/me/export")
@documented(response=ExportSchema, errors=(401,))
async def export_me(request: web.Request) -> web.Response:
    """Everything kept about the caller: account, events (decrypted), cart and orders."""
    principal = await authenticate(request)
    app = request.app
    upstream = Upstream(
        {name: ServiceClient.of(app, name) for name in ("cart", "order")},
        request.headers["Authorization"],
    )
    data = await export(app[STORE], app[VAULT], upstream, principal.user_id)
    if data is None:
        raise Unauthorized("the account of this token no longer exists", code="invalid_token")
    return json_response(data, headers={"Cache-Control": "no-store"})


@privacy_routes.delete("/api/admin/users/{id}")
@documented(response=ForgottenSchema, errors=(401, 403, 404, 409))
async def forget_user(request: web.Request) -> web.Response:
    """Forget a person: destroy their key, delete their account, refuse their tokens.

    Not an admin (409 `admin_account`): the shop never loses its admins through the API;
    `microshop gdpr forget` forgets any account."""
    admin = await require_admin(request)
    app, user_id = request.app, request.match_info["id"]
    meta = context.event_metadata("auth", actor=admin.user_id)
    done = await forget(app[STORE], app[VAULT], user_id, metadata=meta, spare_admins=True)
    forgotten = app[VERIFIER].forgotten
    if forgotten is not None:  # this process refuses their tokens at once
        forgotten.add(done.user_id)
    return json_response(
        {
            "user_id": done.user_id,
            "forgotten_at": done.forgotten_at,
            "key_destroyed": done.key_destroyed,
        }
    )

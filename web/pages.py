"""The server-rendered pages the gateway serves, added with one call: `add_pages(app)`.

Shop pages (`/`, `/products/{id}`, `/orders`, `/orders/{id}`), login (`/login`,
`/logout`), operator pages under `/admin/` and static files under `/static/`. None of them
needs JavaScript. They never clash with the proxied API (`/api/...`, `/.well-known/...`),
the React app (`/app/`) or the kernel's `/health`, `/ready`, `/metrics`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from microshop.appkeys import CONFIG

from . import account, admin, shop
from .refresh import REFRESHES, Refreshes
from .render import create_environment
from .session import CSRF_SECRET, csrf_secret_for

__all__ = ["STATIC_DIR", "add_pages", "page_routes"]

STATIC_DIR = Path(__file__).parent / "static"


def page_routes() -> list[web.AbstractRouteDef]:
    return [
        *shop.routes,
        *account.routes,
        *admin.routes(),
        web.static("/static", STATIC_DIR, append_version=False),
    ]


def add_pages(app: web.Application) -> None:
    """Add the pages to the gateway `app` (before it starts): templates, routes, and the
    operator pages' resources."""
    create_environment(app)
    app[CSRF_SECRET] = csrf_secret_for(app[CONFIG].internal_api_key)
    app[REFRESHES] = Refreshes()
    app.router.add_routes(page_routes())
    app.cleanup_ctx.append(admin.operator_context)

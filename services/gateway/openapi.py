"""The public API document: every service's own part, joined behind the gateway's routes.

Each service serves the OpenAPI fragment of what it implements (`GET /openapi.json`, from
its own schemas); the gateway asks each service behind its route table once, keeps the
answer, and publishes the routes it forwards, with who may call them, at
`/api/openapi.json`, plus a readable page at `/api/docs` (rendered here: no CDN). A service
that cannot be asked yet is named under `x-missing` and asked again on the next request.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from microshop import __version__
from microshop.client import ServiceClient, UpstreamError
from microshop.http import json_response
from microshop.openapi import OPENAPI

from .routing import ROUTES

__all__ = ["FRAGMENTS", "build_spec", "docs_routes"]

log = logging.getLogger(__name__)

FRAGMENTS = web.AppKey("openapi_fragments", dict[str, dict[str, Any]])
"""Each service's fragment, once it was fetched (a deploy does not change it)."""
_SCHEMAS = "#/components/schemas/"


async def _fragment(app: web.Application, service: str) -> dict[str, Any] | None:
    known = app[FRAGMENTS].get(service)
    if known is not None:
        return known
    try:
        reply = await ServiceClient.of(app, service, timeout=2.0).get("/openapi.json")
    except UpstreamError as exc:
        log.warning("no API document from %s: %s", service, exc)
        return None
    if reply.status != 200 or not isinstance(reply.body, dict):
        log.warning("no API document from %s: HTTP %d", service, reply.status)
        return None
    app[FRAGMENTS][service] = reply.body
    return reply.body


def _renamed(node: Any, names: dict[str, str]) -> Any:
    """`node` with every `$ref` to a schema in `names` pointing at its new name."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMAS) and ref[len(_SCHEMAS) :] in names:
            return {**node, "$ref": _SCHEMAS + names[ref[len(_SCHEMAS) :]]}
        return {k: _renamed(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def join(fragments: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One document of the gateway's routes from the services' fragments. Two services
    naming different schemas alike keep both (the later one as `{service}.{name}`)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for service, fetched in sorted(fragments.items()):
        theirs = fetched.get("components", {}).get("schemas", {})
        names = {n: f"{service}.{n}" for n, s in theirs.items() if schemas.get(n, s) != s}
        doc = _renamed(fetched, names)
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            schemas[names.get(name, name)] = schema
        for route in (r for r in ROUTES if r.service == service):
            for method, access in route.methods.items():
                op = doc.get("paths", {}).get(route.path, {}).get(method.lower())
                if op is None:
                    continue
                op = dict(op)
                if access != "public":
                    op["security"] = [{"bearer": []}]
                    op["description"] = f"Needs a bearer token ({access})."
                paths.setdefault(route.path, {})[method.lower()] = op
    return {
        "openapi": OPENAPI,
        "info": {
            "title": "MicroShop API",
            "version": __version__,
            "description": "Errors are `{error: {code, message, details}}`; money is a "
            "decimal string plus `currency`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


async def build_spec(app: web.Application) -> dict[str, Any]:
    """The joined document; services not reachable yet are listed under `x-missing`."""
    services = sorted({route.service for route in ROUTES})
    found = await asyncio.gather(*(_fragment(app, s) for s in services))
    fragments = {s: f for s, f in zip(services, found, strict=True) if f is not None}
    spec = join(fragments)
    missing = [s for s in services if s not in fragments]
    if missing:
        spec["x-missing"] = missing
    return spec


async def openapi(request: web.Request) -> web.Response:
    return json_response(await build_spec(request.app))


async def docs(request: web.Request) -> web.Response:
    """A readable page of every endpoint, rendered on the server from the same document."""
    spec = await build_spec(request.app)
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = json.dumps(body.get("schema", ""), indent=1) if body else ""
            codes = ", ".join(op["responses"])
            lock = "🔒 " if "security" in op else ""
            rows.append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{lock}{html.escape(op['summary'])}</td><td>{codes}</td>"
                f"<td><pre>{html.escape(schema)}</pre></td></tr>"
            )
    page = f"""<!doctype html><html lang=en><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>MicroShop API</title>
<style>body{{font:15px system-ui,sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left;vertical-align:top}}.m{{font-weight:700}}pre{{margin:0;font-size:12px}}</style>
<h1>MicroShop API {html.escape(spec["info"]["version"])}</h1>
<p>{html.escape(spec["info"]["description"])} Machine-readable:
<a href="/api/openapi.json">/api/openapi.json</a>. 🔒 needs <code>Authorization: Bearer
&lt;token&gt;</code> from <code>POST /api/auth/login</code>.</p>
<table><tr><th>Method</th><th>Path</th><th>What</th><th>Statuses</th><th>Body</th></tr>
{"".join(rows)}</table></html>"""
    return web.Response(text=page, content_type="text/html")


async def fragments_context(app: web.Application) -> AsyncIterator[None]:
    app[FRAGMENTS] = {}
    yield


def docs_routes() -> list[web.RouteDef]:
    return [web.get("/api/openapi.json", openapi), web.get("/api/docs", docs)]

"""The React app (`web/frontend`, built by Vite into `web/frontend/dist`) at `/app/`.

`spa_routes()` gives the gateway its routes: files of the build as they are, every other
path under `/app/` the app's `index.html` (the app routes in the browser), `/app` a redirect
to `/app/`. Hashed assets under `/app/assets/` are cached for a year; `index.html` and the
unhashed files are revalidated on every use (`no-cache`), so a new build shows at once.
Nothing outside the build directory is ever served. Without a build, `/app/` answers 503
saying how to make one (`make frontend`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from aiohttp import hdrs, web

__all__ = ["DIST", "PREFIX", "spa_routes"]

DIST = Path(__file__).resolve().parent / "frontend" / "dist"
PREFIX = "/app"

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The build has no inline scripts or styles; images may come from anywhere (`image_url`).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
NOT_BUILT = (
    "The web app is not built: run `make frontend` (or `npm ci && npm run build` in "
    "web/frontend), then reload."
)


def spa_routes(dist: Path | None = None, prefix: str = PREFIX) -> list[web.RouteDef]:
    """The routes serving the build in `dist` (default `web/frontend/dist`) at `prefix/`."""
    root = (dist if dist is not None else DIST).resolve()

    async def redirect(request: web.Request) -> web.StreamResponse:
        location = f"{prefix}/" + (f"?{request.query_string}" if request.query_string else "")
        return web.Response(status=301, headers={hdrs.LOCATION: location})

    async def serve(request: web.Request) -> web.StreamResponse:
        index = root / "index.html"
        if not index.is_file():
            return _not_built(request)
        path = request.match_info["path"]
        file = _inside(root, path)
        if file is not None:
            cache = IMMUTABLE if path.startswith("assets/") else REVALIDATE
            return _file(file, cache)
        if path.startswith("assets/") or path == "assets":
            # A missing hashed asset is a stale page: answering with HTML would only turn
            # it into a confusing MIME-type error in the browser.
            return web.Response(status=404, text="no such asset\n")
        return _file(index, REVALIDATE, csp=True)

    return [
        web.get(prefix, redirect),
        web.get(prefix + "/{path:.*}", serve),
    ]


def _inside(root: Path, path: str) -> Path | None:
    """The regular file `path` names inside `root`, or None (missing, a directory, or
    anywhere outside `root`: `..`, absolute paths, symlinks pointing out)."""
    if not path or "\x00" in path or "\\" in path:
        return None
    try:
        candidate = (root / path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not candidate.is_relative_to(root) or candidate == root:
        return None
    return candidate if candidate.is_file() else None


def _file(path: Path, cache: str, *, csp: bool = False) -> web.FileResponse:
    response = web.FileResponse(path)
    response.headers[hdrs.CACHE_CONTROL] = cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    if csp:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Referrer-Policy"] = "same-origin"
    return response


def _not_built(request: web.Request) -> web.Response:
    headers = {hdrs.CACHE_CONTROL: "no-store", hdrs.RETRY_AFTER: "30"}
    if "text/html" in request.headers.get(hdrs.ACCEPT, ""):
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            "<title>MicroShop: web app not built</title>"
            f"<h1>The web app is not built</h1><p>{html.escape(NOT_BUILT)}</p></html>\n"
        )
        return web.Response(status=503, text=body, content_type="text/html", headers=headers)
    error = {"code": "frontend_not_built", "message": NOT_BUILT, "details": {}}
    return web.Response(
        status=503,
        text=json.dumps({"error": error}),
        content_type="application/json",
        headers=headers,
    )

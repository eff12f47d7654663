"""web/spa.py: the built React app at /app/, with SPA fallback, caching and no way out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from microshop.config import Config
from services.gateway.app import create_app
from tests.tokens import TEST_KEYS
from web import spa
from web.spa import IMMUTABLE, spa_routes

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

INDEX = '<!doctype html><div id="root"></div><script src="/app/assets/index-1a2b3c.js"></script>'
SECRET = "top secret, outside the build"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A build like Vite's, with a secret next to it and a symlink pointing at the secret."""
    (tmp_path / "secret.txt").write_text(SECRET)
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (dist / "assets" / "index-1a2b3c.js").write_text("console.log('app')")
    (dist / "assets" / "index-4d5e6f.css").write_text("body{}")
    (dist / "assets" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return dist


@pytest.fixture
async def client(aiohttp_client: MakeClient, dist: Path) -> Client:
    app = web.Application()
    app.router.add_routes(spa_routes(dist))
    return await aiohttp_client(app)


async def test_index_at_the_root_is_revalidated_every_time(client: Client) -> None:
    resp = await client.get("/app/")
    assert resp.status == 200
    assert await resp.text() == INDEX
    assert resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/app/orders/5c1b0f6e", "/app/cart", "/app/products/x?y=1", "/app/login/"]
)
async def test_app_routes_fall_back_to_the_index(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert await resp.text() == INDEX
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_bare_prefix_redirects_to_the_app(client: Client) -> None:
    resp = await client.get("/app", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (301, "/app/")
    resp = await client.get("/app?next=cart", allow_redirects=False)
    assert resp.headers["Location"] == "/app/?next=cart"


async def test_hashed_assets_are_cached_for_a_year(client: Client) -> None:
    resp = await client.get("/app/assets/index-1a2b3c.js")
    assert resp.status == 200
    assert await resp.text() == "console.log('app')"
    assert "javascript" in resp.content_type
    assert resp.headers["Cache-Control"] == IMMUTABLE
    css = await client.get("/app/assets/index-4d5e6f.css")
    assert (css.status, css.content_type) == (200, "text/css")
    assert css.headers["Cache-Control"] == IMMUTABLE


async def test_unhashed_files_are_served_but_revalidated(client: Client) -> None:
    resp = await client.get("/app/favicon.svg")
    assert (resp.status, resp.content_type) == (200, "image/svg+xml")
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_a_missing_asset_is_a_404_not_the_index(client: Client) -> None:
    resp = await client.get("/app/assets/index-gone.js")
    assert resp.status == 404
    assert INDEX not in await resp.text()


async def test_head_answers_without_a_body(client: Client) -> None:
    resp = await client.head("/app/assets/index-1a2b3c.js")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == IMMUTABLE


@pytest.mark.parametrize(
    "raw",
    [
        "/app/%2e%2e/secret.txt",
        "/app/..%2fsecret.txt",
        "/app/%2e%2e%2fsecret.txt",
        "/app/assets/%2e%2e/%2e%2e/secret.txt",
        "/app/..%5csecret.txt",
        "/app/assets/escape.txt",  # a symlink inside the build pointing out of it
        "/app//etc/passwd",
        "/app/%2Fetc%2Fpasswd",
        "/app/index.html%00.js",
    ],
)
async def test_nothing_outside_the_build_is_served(client: Client, raw: str) -> None:
    resp = await client.get(URL(raw, encoded=True))
    body = await resp.text()
    assert SECRET not in body
    assert "root:" not in body
    assert resp.status in (200, 400, 404)
    if resp.status == 200:  # the app's index, as for any other unknown path
        assert body == INDEX


def test_inside_refuses_every_way_out(dist: Path) -> None:
    root = dist.resolve()
    inside = spa._inside
    assert inside(root, "assets/index-1a2b3c.js") == root / "assets" / "index-1a2b3c.js"
    for path in [
        "../secret.txt",
        "assets/../../secret.txt",
        "/etc/passwd",
        "assets/escape.txt",
        "",
        ".",
        "assets",
        "a\x00b",
        "..\\secret.txt",
    ]:
        assert inside(root, path) is None, path


async def test_without_a_build_the_app_says_how_to_make_one(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    app = web.Application()
    app.router.add_routes(spa_routes(tmp_path / "no-such-dist"))
    client = await aiohttp_client(app)

    page = await client.get("/app/orders/1", headers={"Accept": "text/html,*/*"})
    assert page.status == 503
    assert page.content_type == "text/html"
    assert "make frontend" in await page.text()

    api = await client.get("/app/", headers={"Accept": "application/json"})
    assert api.status == 503
    error = (await api.json())["error"]
    assert error["code"] == "frontend_not_built"
    assert "make frontend" in error["message"]


async def test_the_gateway_serves_the_app_next_to_the_api(
    aiohttp_client: MakeClient, dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spa, "DIST", dist)
    client = await aiohttp_client(create_app(Config.from_env({}), token_keys=TEST_KEYS))
    resp = await client.get("/app/cart")
    assert resp.status == 200
    assert await resp.text() == INDEX
    assert resp.headers["X-Request-ID"]  # the kernel's middlewares apply
    missing = await client.get("/api/no-such-thing")
    assert missing.status == 404
    assert set(await missing.json()) == {"error"}

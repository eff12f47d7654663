"""The web front ends in a real browser: headless Chromium (Debian's /usr/bin/chromium)
driven by the playwright-core scripts in web/frontend/e2e/ against the whole stack.

Each test runs one Node script with the gateway's URL (and whatever else it needs) in its
environment; the script exits non-zero when its scenario fails, and the test shows its
output. Screenshots go to docs/screenshots/latest (gitignored), or to MICROSHOP_SCREENSHOTS
when set (`make screenshots` refreshes docs/screenshots that way).

The React app is built when web/frontend/dist is missing or older than its sources
(`make test` builds it first with `make frontend`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.product.seed import DEMO_PRODUCTS
from tests.e2e.conftest import Stack
from tests.tokens import bearer

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "web" / "frontend"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCRIPT_TIMEOUT = 240.0  # seconds (pytest-timeout is 300); a script waits up to 60 s for one thing

pytestmark = pytest.mark.slow


def _missing_tool() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def _stale(dist_index: Path) -> bool:
    if not dist_index.is_file():
        return True
    built = dist_index.stat().st_mtime
    sources = [
        FRONTEND / "index.html",
        FRONTEND / "vite.config.ts",
        FRONTEND / "package.json",
        *(FRONTEND / "src").rglob("*"),
        *(FRONTEND / "public").rglob("*"),
    ]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def _npm(*args: str) -> None:
    result = subprocess.run(
        ["npm", *args], cwd=FRONTEND, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


@pytest.fixture(scope="module")
def frontend() -> Path:
    """web/frontend with its node_modules and a current build in dist."""
    missing = _missing_tool()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {missing}")
        pytest.skip(f"browser tests need {missing}")
    if not (FRONTEND / "node_modules" / ".package-lock.json").is_file():
        _npm("ci", "--no-audit", "--no-fund")
    if _stale(FRONTEND / "dist" / "index.html"):
        _npm("run", "build")
    return FRONTEND


LATEST_SCREENSHOTS = ROOT / "docs" / "screenshots" / "latest"  # gitignored


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where this run's screenshots go: docs/screenshots/latest (the README links it), or
    MICROSHOP_SCREENSHOTS (`make screenshots` refreshes the committed ones that way)."""
    configured = os.environ.get("MICROSHOP_SCREENSHOTS")
    if configured:
        return Path(configured).resolve()
    LATEST_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in LATEST_SCREENSHOTS.glob("*.png"):  # only this run's pictures count
        old.unlink()
    return LATEST_SCREENSHOTS


@pytest.fixture
async def catalog(
    http: aiohttp.ClientSession, stack: Stack, admin: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The demo catalog (as `microshop seed` makes it, under fresh SKUs), by SKU prefix.

    The stack lives for the whole e2e package: products already created by an earlier
    test of this module are reused.
    """
    found: dict[str, dict[str, Any]] = {}
    for demo in DEMO_PRODUCTS:
        resp = await http.get("/api/products", params={"q": demo.name, "limit": "100"})
        same = [p for p in (await resp.json())["items"] if p["sku"].startswith(f"{demo.sku}-B")]
        if same:
            found[demo.sku] = same[0]
            continue
        body = {
            "sku": f"{demo.sku}-B{secrets.token_hex(3)}",
            "name": demo.name,
            "description": demo.description,
            "price": demo.price,
            "currency": demo.currency,
        }
        resp = await http.post("/api/products", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        found[demo.sku] = await resp.json()
    return found


async def _payments(stack: Stack, **settings: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{stack.service_url('payment')}/internal/settings",
            json=settings,
            headers={"X-Internal-Api-Key": stack.internal_api_key},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def payments_restored(stack: Stack) -> AsyncIterator[None]:
    """Payment settings are shared by every e2e test: put them back whatever happens."""
    await _payments(stack, success_rate=1.0, latency_ms=0)
    try:
        yield
    finally:
        await _payments(stack, success_rate=1.0, latency_ms=0)


async def run_script(
    frontend: Path, script: str, stack: Stack, screenshots: Path, **extra: str
) -> str:
    """Run web/frontend/e2e/`script` with node; fail the test with its output unless it
    exits 0. Returns its output."""
    env = {
        **os.environ,
        "GATEWAY_URL": stack.url,
        "PAYMENT_URL": stack.service_url("payment"),
        "INTERNAL_API_KEY": stack.internal_api_key,
        "SCREENSHOT_DIR": str(screenshots),
        "CHROMIUM": CHROMIUM,
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(frontend / "e2e" / script),
        cwd=frontend,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(SCRIPT_TIMEOUT):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        pytest.fail(f"{script} did not finish in {SCRIPT_TIMEOUT:.0f} s:\n{out.decode()}")
    output = out.decode(errors="replace")
    if process.returncode != 0:
        pytest.fail(f"{script} exited with {process.returncode}:\n{output}", pytrace=False)
    return output


def assert_screenshots(folder: Path, *names: str) -> None:
    """The scenario left a fresh picture of each page it was to photograph."""
    for name in names:
        picture = folder / f"{name}.png"
        assert picture.is_file() and picture.stat().st_size > 1000, picture


# -- the React app (web/frontend, at /app/) ----------------------------------------------------


async def test_app_register_shop_check_out_until_paid(
    frontend: Path,
    stack: Stack,
    screenshots: Path,
    catalog: dict[str, dict[str, Any]],
    payments_restored: None,
) -> None:
    mug = catalog["MUG-CER-350"]
    output = await run_script(
        frontend,
        "spa-checkout.mjs",
        stack,
        screenshots,
        PRODUCT_ID=mug["id"],
        PRODUCT_QUERY="Ceramic Coffee Mug",
    )
    assert "spa-checkout: passed" in output
    assert_screenshots(screenshots, "catalog", "product", "cart", "cart-phone", "order-paid")


async def test_app_failed_payment_then_retry_until_paid(
    frontend: Path,
    stack: Stack,
    screenshots: Path,
    catalog: dict[str, dict[str, Any]],
    payments_restored: None,
) -> None:
    tea = catalog["TEA-SEN-100"]
    output = await run_script(
        frontend,
        "spa-payment-retry.mjs",
        stack,
        screenshots,
        PRODUCT_ID=tea["id"],
        PRODUCT_QUERY="Sencha",
    )
    assert "spa-payment-retry: passed" in output
    assert_screenshots(screenshots, "order-payment-failed", "timeline")


async def test_app_is_served_with_fallback_and_caching(
    frontend: Path, http: aiohttp.ClientSession
) -> None:
    async with http.get("/app/orders/00000000-0000-4000-8000-000000000000") as deep:
        assert deep.status == 200
        assert deep.headers["Cache-Control"] == "no-cache"
        page = await deep.text()
    assert '<div id="root">' in page
    asset = page.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("/app/assets/")
    async with http.get(asset) as resp:
        assert resp.status == 200
        assert "immutable" in resp.headers["Cache-Control"]
        await resp.read()
    async with http.get("/app", allow_redirects=False) as bare:
        assert (bare.status, bare.headers["Location"]) == (301, "/app/")
        await bare.read()


# -- the server-rendered Jinja pages (web/templates) -------------------------------------------


async def test_pages_catalog_search_paging_and_product_without_javascript(
    frontend: Path, stack: Stack, screenshots: Path, catalog: dict[str, dict[str, Any]]
) -> None:
    mug = catalog["MUG-CER-350"]
    output = await run_script(
        frontend,
        "jinja-catalog.mjs",
        stack,
        screenshots,
        PRODUCT_ID=mug["id"],
        PRODUCT_QUERY="Ceramic Coffee Mug",
        PRODUCT_NAME=mug["name"],
        PRODUCT_PRICE=f"{mug['price']} {mug['currency']}",
        PRODUCT_SKU=mug["sku"],
    )
    assert "jinja-catalog: passed" in output
    assert_screenshots(screenshots, "jinja-catalog", "jinja-product")


async def _customer(http: aiohttp.ClientSession) -> tuple[str, str, dict[str, str]]:
    """A new account: email, password and its bearer header."""
    email, password = f"pages-{secrets.token_hex(4)}@example.com", "pass-" + secrets.token_hex(6)
    resp = await http.post("/api/auth/register", json={"email": email, "password": password})
    assert resp.status == 201, await resp.text()
    resp = await http.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return email, password, bearer((await resp.json())["access_token"])


async def test_pages_admin_follows_a_paid_order_through_events_projections_and_logs(
    frontend: Path,
    stack: Stack,
    screenshots: Path,
    http: aiohttp.ClientSession,
    catalog: dict[str, dict[str, Any]],
    payments_restored: None,
) -> None:
    email, password, me = await _customer(http)
    line = {"product_id": catalog["NTB-DOT-A5"]["id"], "quantity": 2}
    resp = await http.post("/api/cart/items", json=line, headers=me)
    assert resp.status == 200, await resp.text()
    correlation = f"browser-{secrets.token_hex(6)}"
    placing = {**me, "X-Correlation-ID": correlation, "Idempotency-Key": secrets.token_hex(8)}
    resp = await http.post("/api/orders", headers=placing)
    assert resp.status == 201, await resp.text()
    order_id = (await resp.json())["id"]
    async with asyncio.timeout(60):  # payments succeed (payments_restored): it gets PAID
        while True:
            resp = await http.get(f"/api/orders/{order_id}", headers=me)
            status = (await resp.json())["status"]
            if status != "PENDING_PAYMENT":
                break
            await asyncio.sleep(0.1)
    assert status == "PAID"

    output = await run_script(
        frontend,
        "admin-events.mjs",
        stack,
        screenshots,
        ORDER_ID=order_id,
        CORRELATION_ID=correlation,
        ADMIN_EMAIL=stack.admin_email,
        ADMIN_PASSWORD=stack.admin_password,
        CUSTOMER_EMAIL=email,
        CUSTOMER_PASSWORD=password,
    )
    assert "admin-events: passed" in output
    assert_screenshots(
        screenshots, "admin-events", "admin-event-chain", "admin-projections", "admin-logs"
    )

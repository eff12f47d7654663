"""`docker compose up` on a clean copy of the repository, used as the README says.

Run by `make compose-test` (and `.ci/run` where a Docker engine is available): builds the
image, starts the whole stack with the host's own Postgres and RabbitMQ still running,
follows README "Try it" (register, log in, add to the cart, order until PAID), opens the
React app and the Jinja catalog, runs the CLI inside the stack, checks every Prometheus
target is up, and removes everything (`down -v`).
"""

from __future__ import annotations

import asyncio
import html
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventstore.sealing import KeyEncryptionKeys

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8000"
PROMETHEUS = "http://127.0.0.1:9090"
SERVICES = (
    "gateway",
    "auth",
    "product",
    "cart",
    "order",
    "payment",
    "order-consumer",
    "log",
    "relay",
)
"""The shop's long-running compose services (each healthy, each scraped)."""


def _log(message: str) -> None:
    print(f"[compose] {message}", flush=True)


def _clean_copy(target: Path) -> None:
    """The files git knows (committed or added), as a fresh clone would have them."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


class Compose:
    def __init__(self, project: Path, name: str) -> None:
        self.project, self.name = project, name

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        started = time.monotonic()
        done = subprocess.run(
            ["docker", "compose", "-p", self.name, *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        _log(
            f"docker compose {' '.join(args)}: exit {done.returncode} "
            f"in {time.monotonic() - started:.1f} s"
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0
    ):
        pytest.fail("the compose test needs a running Docker engine (see .ci/run)")
    project = tmp_path_factory.mktemp("clone")
    _clean_copy(project)
    env = (project / ".env.example").read_text()
    env = env.replace("INTERNAL_API_KEY=\n", f"INTERNAL_API_KEY={secrets.token_urlsafe(32)}\n")
    env = env.replace(
        "PII_KEY_ENCRYPTION_KEY=\n", f"PII_KEY_ENCRYPTION_KEY={KeyEncryptionKeys.generate()}\n"
    )
    env += "\nPAYMENT_SUCCESS_RATE=1.0\n"  # README "Try it" must reach PAID every time
    (project / ".env").write_text(env)
    compose = Compose(project, f"microshop-ci-{secrets.token_hex(3)}")
    try:
        compose.run("up", "--build", "--detach", "--wait", "--wait-timeout", "300", timeout=900)
        yield compose
    finally:
        logs = compose.run("logs", "--no-color", "--tail", "5", check=False)
        _log("last lines of each service:\n" + logs[-4000:])
        compose.run("down", "--volumes", "--remove-orphans", check=False)


async def _json(resp: aiohttp.ClientResponse, status: int) -> Any:
    body = await resp.json(content_type=None)
    assert resp.status == status, f"{resp.method} {resp.url}: {resp.status} {body}"
    return body


def test_every_service_is_healthy_and_the_stack_is_seeded(stack: Compose) -> None:
    listed = stack.run("ps", "--format", "{{.Service}} {{.State}} {{.Health}}")
    _log(listed)
    rows = [line.split() for line in listed.strip().splitlines() if line.strip()]
    app = {r[0]: r[1:] for r in rows if r[0] not in ("migrate",)}
    for service in SERVICES:
        assert app.get(service) == ["running", "healthy"], (service, app.get(service))
    seeded = stack.run("logs", "--no-color", "migrate")
    _log(seeded)
    assert "created admin" in seeded and "demo products" in seeded, seeded


async def test_readme_try_it_reaches_paid(stack: Compose) -> None:
    login = {"email": f"ada-{secrets.token_hex(3)}@example.com", "password": "correct horse"}
    async with aiohttp.ClientSession(GATEWAY) as http:
        await _json(await http.post("/api/auth/register", json=login), 201)
        token = (await _json(await http.post("/api/auth/login", json=login), 200))["access_token"]
        me = {"Authorization": f"Bearer {token}"}
        catalog = await _json(await http.get("/api/products", params={"limit": "100"}), 200)
        assert catalog["total"] >= 12, catalog["total"]
        product = catalog["items"][0]["id"]
        line = {"product_id": product, "quantity": 2}
        cart = await _json(await http.post("/api/cart/items", json=line, headers=me), 200)
        assert cart["items"][0]["quantity"] == 2
        ordered = await http.post("/api/orders", headers={**me, "Idempotency-Key": "first-order"})
        order = await _json(ordered, 201)
        async with asyncio.timeout(60):
            while order["status"] == "PENDING_PAYMENT":
                resp = await http.get(
                    f"/api/orders/{order['id']}", params={"wait": "10"}, headers=me
                )
                order = await _json(resp, 200)
        assert order["status"] == "PAID", order
        timeline = await _json(await http.get(f"/api/orders/{order['id']}/events", headers=me), 200)
        assert timeline["items"][0]["type"] == "OrderPlaced"
    _log(f"order {order['id']} is PAID after {order['payment_attempts']} attempt(s)")


async def test_the_react_app_and_the_pages_are_served(stack: Compose) -> None:
    async with aiohttp.ClientSession(GATEWAY) as http:
        app = await http.get("/app/")
        assert app.status == 200 and "text/html" in app.headers["Content-Type"]
        page = await app.text()
        assert '<div id="root">' in page and "/app/assets/" in page
        first = (await _json(await http.get("/api/products", params={"limit": "1"}), 200))["items"]
        catalog = await http.get("/")
        assert catalog.status == 200
        assert html.escape(first[0]["name"]) in await catalog.text()  # the Jinja catalog
        docs = await _json(await http.get("/api/openapi.json"), 200)
        assert "x-missing" not in docs


def test_the_cli_runs_inside_the_stack(stack: Compose) -> None:
    status = stack.run("run", "--rm", "--no-deps", "migrate", "projections", "status")
    _log(status)
    assert "orders" in status and "relay" in status


async def test_prometheus_scrapes_every_service(stack: Compose) -> None:
    async with aiohttp.ClientSession(PROMETHEUS) as http, asyncio.timeout(90):
        while True:
            targets = (await _json(await http.get("/api/v1/targets"), 200))["data"]
            health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
            if health and all(h == "up" for h in health.values()):
                break
            await asyncio.sleep(2)
    _log(f"prometheus targets: {health}")
    assert set(SERVICES) <= set(health)

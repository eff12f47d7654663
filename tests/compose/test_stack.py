"""`docker compose up` on a clean copy of the repository, used as the README says.

Run by `make compose-test` (and `.ci/run` where a Docker engine is available): builds the
image, starts the whole stack with the host's own Postgres and RabbitMQ still running and
order-service scaled to three replicas (`--scale order=3`), follows README "Try it"
(register, log in, add to the cart, order until PAID), sends orders from several shoppers at
once and checks more than one order replica served them, opens the React app and the Jinja
catalog, runs the CLI inside the stack, checks every Prometheus target (each replica) is up,
and removes everything (`down -v`).
"""

from __future__ import annotations

import asyncio
import html
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventstore.sealing import KeyEncryptionKeys
from microshop.config import SERVICE_PORTS

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
REPLICAS = {"order": 3}
"""`docker compose up --scale order=3`: the callers reach each replica through `order:8004`."""


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
        scale = [f"--scale={name}={count}" for name, count in REPLICAS.items()]
        compose.run(
            "up", "--build", "--detach", "--wait", "--wait-timeout", "300", *scale, timeout=900
        )
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
    for service in SERVICES:
        states = [r[1:] for r in rows if r[0] == service]
        want = [["running", "healthy"]] * REPLICAS.get(service, 1)
        assert states == want, (service, states)
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


def _replica_addresses(stack: Compose, service: str) -> list[str]:
    """host:port of each replica of `service` (Docker picked the host ports)."""
    _, port = SERVICE_PORTS[service]
    return [
        stack.run("port", f"--index={index}", service, str(port)).strip()
        for index in range(1, REPLICAS.get(service, 1) + 1)
    ]


async def _requests_served(http: aiohttp.ClientSession, address: str) -> Counter[str]:
    """The API requests one replica has answered, by kind (from its own /metrics)."""
    async with http.get(f"http://{address}/metrics") as resp:
        text = await resp.text()
    served: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                route = sample.labels["route"]
                if route.startswith(("/api/", "/internal/")):
                    served[route.split("/")[1]] += int(sample.value)
    return served


async def _shop(
    http: aiohttp.ClientSession, product: str, start: asyncio.Barrier
) -> tuple[str, int]:
    """One shopper: an account, a cart, and one order (sent with the others') until paid;
    its final status and how many GETs it took (none when the POST's answer is final)."""
    login = {"email": f"shopper-{secrets.token_hex(4)}@example.com", "password": "correct horse"}
    await _json(await http.post("/api/auth/register", json=login), 201)
    token = (await _json(await http.post("/api/auth/login", json=login), 200))["access_token"]
    me = {"Authorization": f"Bearer {token}"}
    line = {"product_id": product, "quantity": 1}
    await _json(await http.post("/api/cart/items", json=line, headers=me), 200)
    await start.wait()  # every shopper's cart is filled: the orders go at once
    ordered = await http.post("/api/orders", headers={**me, "Idempotency-Key": "scaled"})
    order = await _json(ordered, 201)
    gets = 0
    while order["status"] == "PENDING_PAYMENT":
        resp = await http.get(f"/api/orders/{order['id']}", params={"wait": "10"}, headers=me)
        order = await _json(resp, 200)
        gets += 1
    status: str = order["status"]
    return status, gets


async def test_orders_flow_through_every_order_replica(stack: Compose) -> None:
    """Orders sent at once reach PAID, and more than one order replica answered: the gateway
    and the payment path spread their connections over the addresses of `order`."""
    replicas = _replica_addresses(stack, "order")
    async with aiohttp.ClientSession() as plain:
        before = [await _requests_served(plain, address) for address in replicas]
    shoppers = 6
    start = asyncio.Barrier(shoppers)
    async with aiohttp.ClientSession(GATEWAY) as http, asyncio.timeout(120):
        catalog = await _json(await http.get("/api/products", params={"limit": "1"}), 200)
        product = catalog["items"][0]["id"]
        shopped = await asyncio.gather(*(_shop(http, product, start) for _ in range(shoppers)))
    assert [status for status, _ in shopped] == ["PAID"] * shoppers
    async with aiohttp.ClientSession() as plain:
        after = [await _requests_served(plain, address) for address in replicas]
    served = [a - b for a, b in zip(after, before, strict=True)]
    _log(f"API requests per order replica ({', '.join(replicas)}): {[dict(s) for s in served]}")
    assert sum(s["api"] for s in served) == shoppers + sum(gets for _, gets in shopped)
    assert sum(s["internal"] for s in served) >= shoppers  # each payment reported
    assert sum(1 for s in served if s.total()) > 1, f"one replica answered everything: {served}"


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
    replicas = Counter(t["labels"]["job"] for t in targets["activeTargets"])
    assert all(replicas[name] == count for name, count in REPLICAS.items()), replicas

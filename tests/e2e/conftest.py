"""The whole stack as `microshop up` runs it, once for the e2e tests, on free ports.

Tests talk to it only through the gateway, like a client would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from microshop.config import SERVICE_PORTS
from tests.conftest import StackEnv
from tests.tokens import bearer

from .client import Shop


@dataclasses.dataclass(frozen=True)
class Stack:
    url: str  # the gateway
    admin_email: str
    admin_password: str
    internal_api_key: str
    ports: dict[str, int]
    env: dict[str, str]
    log: Path

    def pids(self, service: str) -> list[int]:
        """Process ids `microshop up` reported for `service`, oldest first."""
        pattern = re.compile(rf"^{re.escape(service)}\s*\| started \(pid (\d+)\)", re.M)
        return [int(pid) for pid in pattern.findall(self.log.read_text())]

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"microshop up exited early:\n{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the stack was not ready in {timeout}s: {last}\n{log.read_text()[-5000:]}")


@contextlib.contextmanager
def running_stack(
    test_env: StackEnv, directory: Path, *up_args: str, **extra_env: str
) -> Iterator[Stack]:
    """`microshop up *up_args` on free ports in the test run's database and vhost, until
    the block ends (then Ctrl-C, as a developer would)."""
    ports = dict(zip(SERVICE_PORTS, _free_ports(len(SERVICE_PORTS)), strict=True))
    admin_email = f"admin-{secrets.token_hex(3)}@microshop.test"
    admin_password = secrets.token_urlsafe(16)
    internal_key = secrets.token_urlsafe(24)
    env = test_env.environ(
        INTERNAL_API_KEY=internal_key,
        ADMIN_EMAIL=admin_email,
        ADMIN_PASSWORD=admin_password,
        LOG_LEVEL=os.environ.get("E2E_LOG_LEVEL", "INFO"),  # observability tests need INFO
        PAYMENT_SUCCESS_RATE="1.0",
        ORDER_CONSUMER_RETRY_ATTEMPTS="3",
        ORDER_CONSUMER_BACKOFF_INITIAL="0.2",
        ORDER_CONSUMER_BACKOFF_MULTIPLIER="2.0",
        NO_COLOR="1",
        **{SERVICE_PORTS[name][0]: str(port) for name, port in ports.items()},
        **extra_env,
    )
    log = directory / "microshop-up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "microshop", "up", "--skip-migrate", *up_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{ports['gateway']}"
    try:
        _wait_ready(url, process, log, timeout=90)
        yield Stack(url, admin_email, admin_password, internal_key, ports, env, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="package")  # gone before other packages' tests run their own relays
def stack(test_env: StackEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(test_env, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the stack's gateway."""
    async with aiohttp.ClientSession(base_url=stack.url) as session:
        yield session


@pytest.fixture
async def admin(http: aiohttp.ClientSession, stack: Stack) -> dict[str, str]:
    """The Authorization header of the stack's admin."""
    resp = await http.post(
        "/api/auth/login", json={"email": stack.admin_email, "password": stack.admin_password}
    )
    assert resp.status == 200, await resp.text()
    return bearer((await resp.json())["access_token"])


@pytest.fixture
async def shop(
    http: aiohttp.ClientSession, stack: Stack, admin: dict[str, str]
) -> AsyncIterator[Shop]:
    """A product to order, payments always succeeding (and put back so afterwards)."""
    body = {"sku": f"CO-{secrets.token_hex(4)}", "name": "Checkout mug", "price": "12.50"}
    product = await (await http.post("/api/products", json=body, headers=admin)).json()
    shop = Shop(http, stack, product["id"])
    await shop.payments(success_rate=1.0, latency_ms=0)
    yield shop
    await shop.payments(success_rate=1.0, latency_ms=0)

"""The shared service kernel (`make_app`) on a real app, pool and database."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import marshmallow
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from eventstore import ConcurrencyError
from microshop.app import make_app
from microshop.appkeys import METRICS, POOL
from microshop.errors import NotFound
from microshop.http import json_response, read_json
from tests.conftest import StackEnv

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


class ItemSchema(marshmallow.Schema):
    name = marshmallow.fields.String(required=True, validate=marshmallow.validate.Length(1, 50))
    quantity = marshmallow.fields.Integer(
        required=True, strict=True, validate=marshmallow.validate.Range(1, 99)
    )


routes = web.RouteTableDef()


@routes.post("/items")
async def create_item(request: web.Request) -> web.Response:
    item = await read_json(request, ItemSchema())
    return json_response(
        {"item": item, "db": await request.app[POOL].fetchval("SELECT 1")}, status=201
    )


@routes.get("/items/{id}")
async def get_item(request: web.Request) -> web.Response:
    raise NotFound(f"no item {request.match_info['id']}")


@routes.get("/conflict")
async def conflict(request: web.Request) -> web.Response:
    raise ConcurrencyError("cart-1", 1, 2)


@routes.get("/internal/ping")
async def internal_ping(request: web.Request) -> web.Response:
    return json_response({"pong": True})


@routes.get("/internal/missing")
async def internal_missing(request: web.Request) -> web.Response:
    raise NotFound("nothing here")


@routes.get("/bug")
async def bug(request: web.Request) -> web.Response:
    raise ZeroDivisionError("oops")


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    return await aiohttp_client(make_app(test_env.config(), "kernel-test", routes=routes))


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


async def test_health_ready_and_ids(client: Client) -> None:
    resp = await client.get("/health", headers={"X-Correlation-ID": "corr-42"})
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    assert resp.headers["X-Correlation-ID"] == "corr-42"
    assert len(resp.headers["X-Request-ID"]) == 32

    resp = await client.get("/ready", headers={"X-Correlation-ID": 'bad id "quoted"'})
    assert resp.status == 200
    assert resp.headers["X-Correlation-ID"] == resp.headers["X-Request-ID"]  # minted


async def test_ready_is_503_until_the_database_is_usable(
    aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    config = test_env.config(database_url="postgresql://127.0.0.1:1/nowhere")
    client = await aiohttp_client(make_app(config, "kernel-test"))
    resp = await client.get("/ready")
    assert resp.status == 503
    body = await resp.json()
    assert_error(body, "not_ready")
    assert "database_ready" in body["error"]["details"]
    assert (await client.get("/health")).status == 200


async def test_valid_body_is_loaded(client: Client) -> None:
    resp = await client.post("/items", json={"name": "Tee ☕", "quantity": 2})
    assert resp.status == 201
    assert await resp.json() == {"item": {"name": "Tee ☕", "quantity": 2}, "db": 1}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (b"", 400, "bad_request"),
        (b"NaN", 400, "bad_request"),
        (b"[1, 2]", 422, "validation_error"),
        (b'{"name": "x", "quantity": "2"}', 422, "validation_error"),
        (b'{"name": "x", "quantity": 100}', 422, "validation_error"),
        (b'{"name": "x", "quantity": 1e400}', 422, "validation_error"),
        (b'{"name": "x", "quantity": 99999999999999999999999999999}', 422, "validation_error"),
        (b'{"name": "", "quantity": 1, "extra": true}', 422, "validation_error"),
        (b"[" * 100_000, 400, "bad_request"),
    ],
)
async def test_client_mistakes_are_4xx_json(
    client: Client, body: bytes, status: int, code: str
) -> None:
    resp = await client.post("/items", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert_error(await resp.json(), code)


async def test_validation_details_name_the_fields(client: Client) -> None:
    resp = await client.post("/items", json={"quantity": 0, "extra": 1})
    details = (await resp.json())["error"]["details"]
    assert set(details) == {"name", "quantity", "extra"}


async def test_oversized_bodies_are_413(client: Client) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'", "quantity": 1}'
    resp = await client.post(
        "/items", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    resp = await client.post("/items", data=chunks())  # no Content-Length: caught on read
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")


async def test_errors_have_one_shape(client: Client) -> None:
    cases = [
        ("GET", "/items/7", 404, "not_found"),
        ("GET", "/nope", 404, "not_found"),
        ("DELETE", "/items", 405, "method_not_allowed"),
        ("GET", "/conflict", 409, "concurrency_conflict"),
        ("GET", "/bug", 500, "internal_error"),
    ]
    for method, path, status, code in cases:
        resp = await client.request(method, path)
        assert resp.status == status, path
        assert_error(await resp.json(), code)
        assert "X-Request-ID" in resp.headers


async def test_metrics_count_requests_by_route_template(client: Client) -> None:
    for _ in range(3):
        await client.get("/items/1")
    await client.get("/items/2")
    text = await (await client.get("/metrics")).text()
    counter = client.app[METRICS].http_requests
    labels = {"method": "GET", "route": "/items/{id}", "status": "404"}
    assert counter.get(labels) == 4
    assert 'route="/items/{id}"' in text
    assert "/items/1" not in text  # raw paths never become labels
    assert "http_request_duration_seconds_bucket" in text


async def test_metrics_labels_stay_bounded_whatever_the_method(client: Client) -> None:
    metrics = client.app[METRICS]
    for n in range(50):  # aiohttp's pure-Python parser lets any token through as a method
        metrics.observe_request(f"X{n}", "unmatched", 405, 0.001)
    assert (
        metrics.http_requests.get({"method": "other", "route": "unmatched", "status": "405"}) == 50
    )
    text = await (await client.get("/metrics")).text()
    assert 'method="X1"' not in text


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_metrics_show_the_process_as_prometheus_clients_name_it(client: Client) -> None:
    """Resident memory, open fds, CPU and asyncio tasks: the lines a slow leak shows in."""
    resident = _resident_bytes()
    text = await (await client.get("/metrics")).text()
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert abs(found["process_resident_memory_bytes"] - resident) < 50 * 2**20
    assert found["process_open_fds"] >= 3  # stdio at least, plus the pool's sockets
    assert found["process_open_fds"] == pytest.approx(len(os.listdir("/proc/self/fd")), abs=20)
    assert 0 < found["process_cpu_seconds_total"] <= time.process_time()
    assert found["python_asyncio_tasks"] >= 1  # the request being served, at least


async def test_demo_logs_emit_a_line_at_the_level(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await client.post("/demo/logs?level=ERROR", headers={"X-Correlation-ID": "demo-1"})
    assert resp.status == 202
    assert (await resp.json())["level"] == "ERROR"
    assert any(r.levelname == "ERROR" and "kernel-test" in r.getMessage() for r in caplog.records)
    resp = await client.post("/demo/logs?level=DEBUG")
    assert resp.status == 422


async def test_access_lines_at_info_leave_out_peers_calls_that_succeeded(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Every public request and every refusal has its line at INFO; a successful call of a
    peer (`/internal/...`, the plumbing of a flow) only at DEBUG."""

    async def lines(level: int) -> list[str]:
        caplog.clear()
        with caplog.at_level(level, logger="microshop.access"):
            await client.get("/internal/ping")
            await client.get("/internal/missing")
            await client.get("/items/7")
            await client.get("/conflict")
        return [" ".join(r.getMessage().split()[:3]) for r in caplog.records]

    assert await lines(logging.INFO) == [
        "GET /internal/missing 404",
        "GET /items/{id} 404",
        "GET /conflict 409",
    ]
    assert (await lines(logging.DEBUG))[0] == "GET /internal/ping 200"

"""Time travel on orders: `GET /api/orders/{id}?as_of=T` folds the order's stream up to T.

One order lives through a failed payment round, a retry and a successful second round on
the real database (the outcomes reported through the internal API, as order-consumer
does); the times asked for are the exact `recorded_at` of its timeline, as the UIs use
them. The Jinja page is served by the real gateway in front of the real order-service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import PostgresEventStore
from services.gateway.app import create_app as create_gateway
from services.order.app import create_app
from tests.conftest import StackEnv, closed_port_url
from tests.integration.test_order_service import KEY, placed
from tests.pages import text_of
from tests.tokens import TEST_KEYS, admin_token, bearer, mint
from web.session import SESSION_COOKIE

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient, test_env: StackEnv) -> Client:
    config = test_env.config(internal_api_key=KEY["X-Internal-Api-Key"])
    return await aiohttp_client(create_app(config, token_keys=TEST_KEYS))


async def failed_then_paid(store: PostgresEventStore, client: Client, owner: str) -> str:
    """An order whose first payment round failed, was retried by its owner, and paid."""
    order_id = await placed(store, client, owner)
    steps: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/internal/orders/{}/payment-failed", {"round": 1, "attempts": 3}, KEY),
        ("/api/orders/{}/retry-payment", {}, bearer(mint(owner))),
        (
            "/internal/orders/{}/payment-succeeded",
            {"round": 2, "attempt": 1, "payment_id": str(uuid.uuid4())},
            KEY,
        ),
    ]
    for path, body, headers in steps:
        await asyncio.sleep(0.005)  # room for a time strictly between two events
        resp = await client.post(path.format(order_id), json=body, headers=headers)
        assert resp.status in (200, 202), await resp.text()
    return order_id


async def recorded(client: Client, order_id: str, token: str) -> dict[str, str]:
    """The exact `recorded_at` of each of the order's own events, as its timeline has them."""
    resp = await client.get(f"/api/orders/{order_id}/events", headers=bearer(token))
    items = (await resp.json())["items"]
    return {i["type"]: i["recorded_at"] for i in items if i["stream"] == f"order-{order_id}"}


async def as_of(client: Client, order_id: str, when: str, token: str) -> tuple[int, Any]:
    resp = await client.get(
        f"/api/orders/{order_id}", params={"as_of": when}, headers=bearer(token)
    )
    return resp.status, await resp.json()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


async def test_the_order_as_it_was_before_during_and_after_a_failed_round(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await failed_then_paid(store, client, owner)
    me = mint(owner)
    times = await recorded(client, order_id, me)
    assert list(times) == [
        "OrderPlaced",
        "PaymentFailed",
        "PaymentRetryRequested",
        "PaymentSucceeded",
    ]
    placed, failed, retried = (
        at(times["OrderPlaced"]),
        at(times["PaymentFailed"]),
        at(times["PaymentRetryRequested"]),
    )
    assert placed < failed < retried

    status, body = await as_of(client, order_id, iso(placed - dt.timedelta(microseconds=1)), me)
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "no such order", "details": {}}}

    status, body = await as_of(client, order_id, times["OrderPlaced"], me)
    assert (status, body["status"], body["payment_attempts"]) == (200, "PENDING_PAYMENT", 0)

    # the event's own time includes it, to the microsecond
    status, body = await as_of(client, order_id, times["PaymentFailed"], me)
    assert (status, body["status"], body["payment_attempts"]) == (200, "PAYMENT_FAILED", 3)
    assert at(body["updated_at"]) == failed
    between = failed + (retried - failed) / 2
    assert failed < between < retried
    status, between_body = await as_of(client, order_id, iso(between), me)
    assert (status, between_body) == (200, body)
    just_before_retry = iso(retried - dt.timedelta(microseconds=1))
    assert (await as_of(client, order_id, just_before_retry, me))[1]["status"] == "PAYMENT_FAILED"
    # the same instant in another timezone (the `+` must reach the service as a `+`)
    elsewhere = iso(between.astimezone(dt.timezone(dt.timedelta(hours=2))))
    assert "+02:00" in elsewhere
    assert (await as_of(client, order_id, elsewhere, me))[1] == body

    status, body = await as_of(client, order_id, times["PaymentRetryRequested"], me)
    assert (status, body["status"]) == (200, "PENDING_PAYMENT")

    now = await (await client.get(f"/api/orders/{order_id}", headers=bearer(me))).json()
    assert now["status"] == "PAID"
    for after in (times["PaymentSucceeded"], iso(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))):
        status, body = await as_of(client, order_id, after, me)
        assert (status, body) == (200, now)  # the same shape and values as the read model


async def test_only_the_owner_and_admins_travel_in_time(
    client: Client, store: PostgresEventStore
) -> None:
    owner = str(uuid.uuid4())
    order_id = await failed_then_paid(store, client, owner)
    failed = (await recorded(client, order_id, mint(owner)))["PaymentFailed"]
    missing = await as_of(client, str(uuid.uuid4()), failed, mint(owner))
    assert missing[0] == 404
    assert await as_of(client, order_id, failed, mint()) == missing  # no hint it exists
    status, body = await as_of(client, order_id, failed, admin_token())
    assert (status, body["status"]) == (200, "PAYMENT_FAILED")
    anonymous = await client.get(f"/api/orders/{order_id}", params={"as_of": failed})
    assert anonymous.status == 401


@pytest.mark.parametrize(
    "params",
    [
        {"as_of": "yesterday"},
        {"as_of": ""},
        {"as_of": "2024-05-01T12:00:00"},  # no timezone: refused, not guessed
        {"as_of": "2024-05-01"},
        {"as_of": "2024-05-01T12:00:00 02:00"},  # a `+` sent unencoded reads as a space
        {"as_of": "2024-13-01T12:00:00Z"},
        {"as_of": "2024-05-01T12:00:00Z", "wait": "5"},  # the past does not change
    ],
)
async def test_a_bad_as_of_is_a_422_in_the_error_shape(
    client: Client, store: PostgresEventStore, params: dict[str, str]
) -> None:
    owner = str(uuid.uuid4())
    order_id = await failed_then_paid(store, client, owner)
    resp = await client.get(f"/api/orders/{order_id}", params=params, headers=bearer(mint(owner)))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"as_of"} and error["details"]["as_of"]


async def test_the_gateway_and_the_order_page_show_the_state_at_an_event(
    client: Client, store: PostgresEventStore, aiohttp_client: MakeClient, test_env: StackEnv
) -> None:
    owner = str(uuid.uuid4())
    order_id = await failed_then_paid(store, client, owner)
    down = closed_port_url()
    config = test_env.config(
        internal_api_key="time-travel-gateway-key",
        upstream_timeout_seconds=2.0,
        order_url=str(client.make_url("")).rstrip("/"),
        **{f"{s}_url": down for s in ("auth", "product", "cart", "payment", "log")},
    )
    gateway = await aiohttp_client(create_gateway(config, token_keys=TEST_KEYS))
    failed = (await recorded(client, order_id, mint(owner)))["PaymentFailed"]

    proxied = await gateway.get(
        f"/api/orders/{order_id}", params={"as_of": failed}, headers=bearer(mint(owner))
    )
    assert proxied.status == 200
    assert (await proxied.json())["status"] == "PAYMENT_FAILED"

    gateway.session.cookie_jar.update_cookies({SESSION_COOKIE: mint(owner)})
    now = await gateway.get(f"/orders/{order_id}")
    assert now.status == 200
    page = await now.text()
    assert "State at this event" not in text_of(page)
    links = [html.unescape(h) for h in re.findall(r'href="([^"]*\?as_of=[^"]*)"', page)]
    assert len(links) == 4  # one per timeline entry
    link = next(h for h in links if failed.replace(":", "%3A") in h)

    resp = await gateway.get(link)
    assert resp.status == 200, await resp.text()
    shown = text_of(await resp.text())
    assert "State at this event" in shown
    state = shown[shown.index("State at this event") : shown.index("Timeline")]
    assert "Status PAYMENT_FAILED" in state
    assert "Payment attempts 3" in state
    assert "Status: PAID" in shown  # the current status stays where it was

    before = iso(at(failed) - dt.timedelta(days=1))
    early = text_of(
        await (await gateway.get(f"/orders/{order_id}", params={"as_of": before})).text()
    )
    assert "The order did not exist yet at that time" in early
    bad = await gateway.get(f"/orders/{order_id}", params={"as_of": "2024-05-01T12:00:00"})
    assert bad.status == 400
    assert "timezone" in text_of(await bad.text())

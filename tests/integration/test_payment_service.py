"""payment-service over HTTP on the real database: the internal payment contract.

order-service is played by a small aiohttp server that records the charges reported to it
and answers what a test tells it to (200, or 409 `order_cancelled`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from eventstore import PostgresEventStore
from microshop.appkeys import METRICS
from services.payment.app import create_app
from services.payment.appkeys import PAYMENT_METRICS, SIMULATOR
from services.payment.domain import (
    PaymentAttempted,
    PaymentAttemptFailed,
    PaymentCharged,
    PaymentRefunded,
)
from services.payment.handlers import REFUND_REASON
from services.payment.simulator import DECLINE_REASON
from tests.conftest import StackEnv, closed_port_url, stand_in

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
MakePayment = Callable[..., Awaitable[Client]]

KEY = "k"
INTERNAL = {"X-Internal-Api-Key": KEY}
RESULT_KEYS = {"status", "order_id", "round", "attempt", "payment_id", "reason", "reported"}


# -- a stand-in for order-service ----------------------------------------------------------


@dataclasses.dataclass
class Report:
    order_id: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclasses.dataclass
class OrderUpstream:
    """Records `POST /internal/orders/{id}/payment-succeeded` and answers `status`/`body`."""

    url: str = ""
    reports: list[Report] = dataclasses.field(default_factory=list)
    status: int = 200
    body: dict[str, Any] = dataclasses.field(default_factory=lambda: {"status": "PAID"})

    async def payment_succeeded(self, request: web.Request) -> web.Response:
        self.reports.append(
            Report(request.match_info["id"], await request.json(), dict(request.headers))
        )
        return web.json_response(self.body, status=self.status)

    def cancel_orders(self) -> None:
        self.status = 409
        self.body = {
            "error": {
                "code": "order_cancelled",
                "message": "the order is CANCELLED",
                "details": {"status": "CANCELLED"},
            }
        }


@pytest.fixture
async def orders() -> AsyncIterator[OrderUpstream]:
    upstream = OrderUpstream()
    app = web.Application()
    app.router.add_post("/internal/orders/{id}/payment-succeeded", upstream.payment_succeeded)
    async with stand_in(app) as upstream.url:
        yield upstream


# -- the service under test ----------------------------------------------------------------


@pytest.fixture
def make_payment(
    aiohttp_client: MakeClient, test_env: StackEnv, orders: OrderUpstream
) -> MakePayment:
    """payment-service with the internal key "k", reporting to `orders`; keyword arguments
    override the config (default: every attempt succeeds, no latency, random dice)."""

    async def make(**overrides: Any) -> Client:
        settings: dict[str, Any] = {
            "internal_api_key": KEY,
            "order_url": orders.url,
            "payment_success_rate": 1.0,
            "payment_latency_ms": 0,
            "payment_random_seed": None,
        }
        settings.update(overrides)
        return await aiohttp_client(create_app(test_env.config(**settings)))

    return make


@pytest.fixture
async def client(make_payment: MakePayment) -> Client:
    return await make_payment()


def assert_error(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    details: dict[str, Any] = body["error"]["details"]
    assert isinstance(details, dict)
    return details


def payment(order_id: uuid.UUID | str, attempt: int = 1, round_: int = 1, **fields: Any) -> Any:
    return {
        "order_id": str(order_id),
        "round": round_,
        "attempt": attempt,
        "amount": "12.34",
        "currency": "EUR",
        **fields,
    }


async def pay(client: Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    resp = await client.post("/internal/payments", json=body, headers={**INTERNAL, **headers})
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    assert set(answer) == RESULT_KEYS
    return answer


async def settings_of(client: Client) -> dict[str, Any]:
    resp = await client.get("/internal/settings", headers=INTERNAL)
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = await resp.json()
    return found


async def put_settings(client: Client, body: Any) -> dict[str, Any]:
    resp = await client.put("/internal/settings", json=body, headers=INTERNAL)
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = await resp.json()
    return found


async def stream_of(store: PostgresEventStore, order_id: uuid.UUID) -> list[object]:
    return [e.data for e in await store.read_stream(f"payment-{order_id}")]


# -- auth on every internal route ----------------------------------------------------------

ROUTES = [
    ("POST", "/internal/payments", payment(uuid.uuid4())),
    ("GET", f"/internal/payments/{uuid.uuid4()}", None),
    ("GET", "/internal/settings", None),
    ("PUT", "/internal/settings", {"success_rate": 0.0}),
]


BAD_KEYS = [
    {},
    {"X-Internal-Api-Key": "wrong"},
    {"X-Internal-Api-Key": ""},
    {"X-Internal-Api-Key": "K"},
    {"X-Internal-Api-Key": "kk"},
    {"Authorization": "Bearer k"},
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("headers", BAD_KEYS)
async def test_internal_routes_need_the_key(
    client: Client, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == 401
    assert_error(await resp.json(), "bad_internal_key")
    assert (await settings_of(client))["success_rate"] == 1.0  # the PUT changed nothing


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_internal_routes_are_closed_without_a_configured_key(
    make_payment: MakePayment, method: str, path: str, body: Any
) -> None:
    client = await make_payment(internal_api_key="")
    for headers in ({}, INTERNAL, {"X-Internal-Api-Key": ""}):
        resp = await client.request(method, path, json=body, headers=headers)
        assert resp.status == 403
        assert_error(await resp.json(), "internal_closed")


async def test_the_key_is_checked_before_the_body(client: Client) -> None:
    resp = await client.post("/internal/payments", data=b"{not json")
    assert resp.status == 401


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"order_id": "not-a-uuid"}, "order_id"),
        ({"order_id": 42}, "order_id"),
        ({"round": 0}, "round"),
        ({"round": -1}, "round"),
        ({"round": "1"}, "round"),
        ({"round": True}, "round"),
        ({"round": 1.5}, "round"),
        ({"round": 2**31}, "round"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": None}, "attempt"),
        ({"attempt": False}, "attempt"),
        ({"amount": 12.34}, "amount"),
        ({"amount": 12}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "-5.00"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": ""}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": None}, "currency"),
        ({"tip": "1.00"}, "tip"),
    ],
)
async def test_invalid_payment_requests_are_422_per_field(
    client: Client, store: PostgresEventStore, changes: dict[str, Any], field: str
) -> None:
    order_id = uuid.uuid4()
    resp = await client.post(
        "/internal/payments", json={**payment(order_id), **changes}, headers=INTERNAL
    )
    assert resp.status == 422, await resp.text()
    details = assert_error(await resp.json(), "validation_error")
    assert set(details) == {field}
    assert await stream_of(store, order_id) == []


async def test_a_refusal_names_the_rule_under_its_field(client: Client) -> None:
    """The message is the rule's own words: the field is the key it is reported under."""
    for changes, field, message in [
        ({"amount": "0"}, "amount", "must be greater than 0"),
        ({"amount": "1.234"}, "amount", "must have at most 2 decimal places"),
        ({"currency": "eur"}, "currency", "must be 3 uppercase letters (ISO 4217), e.g. EUR"),
    ]:
        resp = await client.post(
            "/internal/payments", json={**payment(uuid.uuid4()), **changes}, headers=INTERNAL
        )
        assert resp.status == 422, await resp.text()
        assert assert_error(await resp.json(), "validation_error") == {field: [message]}


@pytest.mark.parametrize("missing", ["order_id", "round", "attempt", "amount", "currency"])
async def test_every_field_is_required(client: Client, missing: str) -> None:
    body = payment(uuid.uuid4())
    del body[missing]
    resp = await client.post("/internal/payments", json=body, headers=INTERNAL)
    assert resp.status == 422
    assert set(assert_error(await resp.json(), "validation_error")) == {missing}


@pytest.mark.parametrize("raw", [b"{not json", b'{"order_id": ', b"", b"NaN", b'{"a": NaN}'])
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    for path, method in (("/internal/payments", "POST"), ("/internal/settings", "PUT")):
        resp = await client.request(method, path, data=raw, headers=INTERNAL)
        assert resp.status == 400, (path, raw)
        assert_error(await resp.json(), "bad_request")


async def test_a_body_that_is_not_an_object_is_422(client: Client) -> None:
    resp = await client.post("/internal/payments", json=[payment(uuid.uuid4())], headers=INTERNAL)
    assert resp.status == 422
    assert_error(await resp.json(), "validation_error")


# -- charging ------------------------------------------------------------------------------


async def test_rate_1_charges_records_and_reports_to_order_service(
    client: Client, store: PostgresEventStore, orders: OrderUpstream
) -> None:
    order_id = uuid.uuid4()
    answer = await pay(
        client,
        payment(order_id, attempt=2, round_=3, amount="12.3"),
        **{"X-Correlation-ID": "corr-pay-1", "X-Causation-ID": "event-42"},
    )
    payment_id = uuid.UUID(answer["payment_id"])
    assert answer == {
        "status": "charged",
        "order_id": str(order_id),
        "round": 3,
        "attempt": 2,
        "payment_id": str(payment_id),
        "reason": None,
        "reported": True,
    }

    recorded = await store.read_stream(f"payment-{order_id}")
    assert [e.data for e in recorded] == [
        PaymentAttempted(order_id, 3, 2, Decimal("12.30"), "EUR"),
        PaymentCharged(order_id, 3, 2, payment_id, Decimal("12.30"), "EUR"),
    ]
    for event in recorded:
        assert event.metadata.correlation_id == "corr-pay-1"
        assert event.metadata.causation_id == "event-42"
        assert event.metadata.actor == "payment"
        assert event.metadata.service == "payment"

    [report] = orders.reports
    assert report.order_id == str(order_id)
    assert report.body == {"round": 3, "attempt": 2, "payment_id": str(payment_id)}
    assert report.headers["X-Internal-Api-Key"] == KEY
    assert report.headers["X-Correlation-ID"] == "corr-pay-1"
    assert report.headers["X-Causation-ID"] == str(recorded[1].event_id)  # the PaymentCharged


async def test_rate_0_declines_records_and_reports_nothing(
    make_payment: MakePayment, store: PostgresEventStore, orders: OrderUpstream
) -> None:
    client = await make_payment(payment_success_rate=0.0)
    order_id = uuid.uuid4()
    answer = await pay(client, payment(order_id))
    assert answer == {
        "status": "declined",
        "order_id": str(order_id),
        "round": 1,
        "attempt": 1,
        "payment_id": None,
        "reason": DECLINE_REASON,
        "reported": False,
    }
    assert await stream_of(store, order_id) == [
        PaymentAttempted(order_id, 1, 1, Decimal("12.34"), "EUR"),
        PaymentAttemptFailed(order_id, 1, 1, DECLINE_REASON),
    ]
    assert orders.reports == []


async def test_a_bad_causation_header_is_not_recorded(
    client: Client, store: PostgresEventStore
) -> None:
    order_id = uuid.uuid4()
    await pay(client, payment(order_id), **{"X-Causation-ID": "no spaces allowed"})
    for event in await store.read_stream(f"payment-{order_id}"):
        assert event.metadata.causation_id is None


# -- idempotency ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 1.0])
async def test_the_same_request_twice_gets_the_same_answer_and_no_new_events(
    make_payment: MakePayment, store: PostgresEventStore, rate: float
) -> None:
    client = await make_payment(payment_success_rate=rate)
    order_id = uuid.uuid4()
    first = await pay(client, payment(order_id, amount="12.30"))
    events = await store.read_stream(f"payment-{order_id}")
    await put_settings(client, {"success_rate": 1.0 - rate})  # a new roll would differ

    again = await pay(client, payment(order_id, amount="12.3"))  # the same amount
    assert again == first
    assert await store.read_stream(f"payment-{order_id}") == events


async def test_a_replay_reports_the_charge_again_and_a_new_attempt_is_already_charged(
    client: Client, store: PostgresEventStore, orders: OrderUpstream
) -> None:
    order_id = uuid.uuid4()
    charged = await pay(client, payment(order_id, attempt=1))
    assert await pay(client, payment(order_id, attempt=1)) == charged
    # a lost report is repaired by the caller's retry: order-service takes it idempotently
    assert [r.body["payment_id"] for r in orders.reports] == [charged["payment_id"]] * 2

    for round_, attempt in ((1, 2), (2, 1)):
        answer = await pay(client, payment(order_id, attempt=attempt, round_=round_))
        assert answer == {
            "status": "already_charged",
            "order_id": str(order_id),
            "round": round_,
            "attempt": attempt,
            "payment_id": charged["payment_id"],
            "reason": None,
            "reported": False,
        }
    assert len(await stream_of(store, order_id)) == 2
    assert len(orders.reports) == 2  # already_charged is not reported


async def test_a_known_attempt_with_another_amount_is_409(
    client: Client, store: PostgresEventStore
) -> None:
    order_id = uuid.uuid4()
    await pay(client, payment(order_id))
    for changes in ({"amount": "99.99"}, {"currency": "USD"}):
        resp = await client.post(
            "/internal/payments", json={**payment(order_id), **changes}, headers=INTERNAL
        )
        assert resp.status == 409
        assert_error(await resp.json(), "idempotency_conflict")
    assert len(await stream_of(store, order_id)) == 2


async def test_a_declined_order_can_be_charged_by_a_later_attempt(
    make_payment: MakePayment, store: PostgresEventStore
) -> None:
    client = await make_payment(payment_success_rate=0.0)
    order_id = uuid.uuid4()
    assert (await pay(client, payment(order_id, attempt=1)))["status"] == "declined"
    await put_settings(client, {"success_rate": 1.0})
    charged = await pay(client, payment(order_id, attempt=2))
    assert charged["status"] == "charged"
    # the declined attempt keeps its answer, even now that the order is charged
    assert (await pay(client, payment(order_id, attempt=1)))["status"] == "declined"
    assert [type(e) for e in await stream_of(store, order_id)] == [
        PaymentAttempted,
        PaymentAttemptFailed,
        PaymentAttempted,
        PaymentCharged,
    ]


# -- concurrency: never charged twice ------------------------------------------------------


async def test_concurrent_attempts_charge_an_order_exactly_once(
    make_payment: MakePayment, store: PostgresEventStore, orders: OrderUpstream
) -> None:
    # the latency makes every request load the stream before any of them appends
    client = await make_payment(payment_latency_ms=50)
    order_id = uuid.uuid4()
    answers = await asyncio.gather(
        *(pay(client, payment(order_id, attempt=n)) for n in range(1, 21))
    )
    statuses = sorted(a["status"] for a in answers)
    assert statuses == ["already_charged"] * 19 + ["charged"]
    assert len({a["payment_id"] for a in answers}) == 1
    events = await stream_of(store, order_id)
    charges = [e for e in events if isinstance(e, PaymentCharged)]
    assert len(charges) == 1
    assert len(events) == 2  # the losers recorded nothing
    assert str(charges[0].payment_id) == answers[0]["payment_id"]
    assert len(orders.reports) == 1


async def test_concurrent_copies_of_one_attempt_charge_once_and_answer_alike(
    make_payment: MakePayment, store: PostgresEventStore
) -> None:
    client = await make_payment(payment_latency_ms=50)
    order_id = uuid.uuid4()
    answers = await asyncio.gather(*(pay(client, payment(order_id)) for _ in range(10)))
    assert all(a == answers[0] for a in answers)
    assert answers[0]["status"] == "charged"
    assert len(await stream_of(store, order_id)) == 2


async def test_concurrent_declines_are_all_recorded(
    make_payment: MakePayment, store: PostgresEventStore
) -> None:
    client = await make_payment(payment_success_rate=0.0, payment_latency_ms=20)
    order_id = uuid.uuid4()
    answers = await asyncio.gather(
        *(pay(client, payment(order_id, attempt=n)) for n in range(1, 21))
    )
    assert {a["status"] for a in answers} == {"declined"}
    events = await stream_of(store, order_id)
    assert len(events) == 40
    assert sorted(e.attempt for e in events if isinstance(e, PaymentAttemptFailed)) == list(
        range(1, 21)
    )


# -- the simulation ------------------------------------------------------------------------


async def outcomes(client: Client, count: int) -> list[str]:
    """The statuses of `count` first attempts of fresh orders, one after another."""
    return [(await pay(client, payment(uuid.uuid4())))["status"] for _ in range(count)]


async def test_a_seed_makes_the_outcomes_reproducible(make_payment: MakePayment) -> None:
    seed, count = 20240611, 24
    first = await outcomes(
        await make_payment(payment_success_rate=0.5, payment_random_seed=seed), count
    )
    second = await outcomes(
        await make_payment(payment_success_rate=0.5, payment_random_seed=seed), count
    )
    dice = random.Random(seed)
    expected = ["charged" if dice.random() < 0.5 else "declined" for _ in range(count)]
    assert first == second == expected
    assert set(first) == {"charged", "declined"}


async def test_replays_do_not_roll_the_dice(make_payment: MakePayment) -> None:
    seed = 7
    client = await make_payment(payment_success_rate=0.5, payment_random_seed=seed)
    order_id = uuid.uuid4()
    statuses = [(await pay(client, payment(order_id, attempt=1)))["status"]]
    for _ in range(3):  # answered from the record
        await pay(client, payment(order_id, attempt=1))
    statuses += await outcomes(client, 5)
    dice = random.Random(seed)
    assert statuses == ["charged" if dice.random() < 0.5 else "declined" for _ in range(6)]


async def test_settings_start_from_the_config_and_change_the_next_payment(
    make_payment: MakePayment,
) -> None:
    client = await make_payment(payment_success_rate=0.25, payment_latency_ms=0)
    assert await settings_of(client) == {"success_rate": 0.25, "latency_ms": 0}

    assert await put_settings(client, {"success_rate": 0}) == {
        "success_rate": 0.0,
        "latency_ms": 0,
    }
    assert await outcomes(client, 3) == ["declined"] * 3

    assert await put_settings(client, {"success_rate": 1, "latency_ms": 5}) == {
        "success_rate": 1.0,
        "latency_ms": 5,
    }
    assert await outcomes(client, 3) == ["charged"] * 3

    assert await put_settings(client, {"latency_ms": 0}) == {"success_rate": 1.0, "latency_ms": 0}
    assert await put_settings(client, {}) == {"success_rate": 1.0, "latency_ms": 0}
    assert await put_settings(client, {"success_rate": 0.75}) == {
        "success_rate": 0.75,
        "latency_ms": 0,
    }
    assert await settings_of(client) == {"success_rate": 0.75, "latency_ms": 0}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"success_rate": "NaN"}, {"success_rate"}),
        ({"success_rate": "nan"}, {"success_rate"}),
        ({"success_rate": 1.5}, {"success_rate"}),
        ({"success_rate": -1}, {"success_rate"}),
        ({"success_rate": -0.01}, {"success_rate"}),
        ({"success_rate": "0.5"}, {"success_rate"}),
        ({"success_rate": True}, {"success_rate"}),
        ({"success_rate": None}, {"success_rate"}),
        ({"success_rate": [0.5]}, {"success_rate"}),
        ({"latency_ms": -1}, {"latency_ms"}),
        ({"latency_ms": 60001}, {"latency_ms"}),
        ({"latency_ms": 1.5}, {"latency_ms"}),
        ({"latency_ms": "100"}, {"latency_ms"}),
        ({"latency_ms": False}, {"latency_ms"}),
        ({"success_rate": 2, "latency_ms": -5}, {"success_rate", "latency_ms"}),
        ({"success_rate": 0.5, "latency_ms": "x"}, {"latency_ms"}),
        ({"seed": 1}, {"seed"}),
    ],
)
async def test_invalid_settings_are_422_and_change_nothing(
    client: Client, body: dict[str, Any], fields: set[str]
) -> None:
    before = await settings_of(client)
    resp = await client.put("/internal/settings", json=body, headers=INTERNAL)
    assert resp.status == 422, await resp.text()
    assert set(assert_error(await resp.json(), "validation_error")) == fields
    assert await settings_of(client) == before


@pytest.mark.parametrize(
    "raw", [b'{"success_rate": 1e400}', b'{"success_rate": 1.0000001}', b'{"latency_ms": 1e3}']
)
async def test_numbers_beyond_the_bounds_are_422(client: Client, raw: bytes) -> None:
    resp = await client.put("/internal/settings", data=raw, headers=INTERNAL)
    assert resp.status == 422, await resp.text()
    assert_error(await resp.json(), "validation_error")


async def test_settings_bounds_are_accepted(client: Client) -> None:
    assert await put_settings(client, {"success_rate": 0.0, "latency_ms": 60000}) == {
        "success_rate": 0.0,
        "latency_ms": 60000,
    }
    assert await put_settings(client, {"success_rate": 1.0, "latency_ms": 0}) == {
        "success_rate": 1.0,
        "latency_ms": 0,
    }


async def test_settings_changed_on_one_replica_reach_the_others(
    make_payment: MakePayment,
) -> None:
    one, two = await make_payment(), await make_payment()
    assert one.app[SIMULATOR] is not two.app[SIMULATOR]
    async with asyncio.timeout(10):  # ready: each hears the other's changes from now on
        while not all([(await c.get("/ready")).status == 200 for c in (one, two)]):
            await asyncio.sleep(0.02)
    await put_settings(one, {"success_rate": 0.25, "latency_ms": 7})
    async with asyncio.timeout(10):
        while await settings_of(two) != {"success_rate": 0.25, "latency_ms": 7}:
            await asyncio.sleep(0.02)
    await put_settings(two, {"success_rate": 0.5})  # the last change wins everywhere
    async with asyncio.timeout(10):
        while (await settings_of(one))["success_rate"] != 0.5:
            await asyncio.sleep(0.02)
    expected = {"success_rate": 0.5, "latency_ms": 7}
    assert await settings_of(one) == expected and await settings_of(two) == expected
    later = await make_payment()  # a replica started later starts from its environment
    assert (await settings_of(later))["success_rate"] == 1.0


async def test_the_latency_is_applied(make_payment: MakePayment) -> None:
    client = await make_payment(payment_latency_ms=150)
    started = time.monotonic()
    await pay(client, payment(uuid.uuid4()))
    assert time.monotonic() - started >= 0.15

    await put_settings(client, {"latency_ms": 250})
    started = time.monotonic()
    await pay(client, payment(uuid.uuid4()))
    assert time.monotonic() - started >= 0.25


# -- reporting to order-service and the refund compensation --------------------------------


async def test_a_charge_for_a_cancelled_order_is_refunded(
    client: Client, store: PostgresEventStore, orders: OrderUpstream
) -> None:
    orders.cancel_orders()
    order_id = uuid.uuid4()
    answer = await pay(client, payment(order_id), **{"X-Correlation-ID": "corr-refund"})
    assert answer["status"] == "charged"  # the payment itself happened
    assert "refunded" not in answer
    assert answer["reported"] is False  # order-service refused it: the caller must not rely on it
    payment_id = uuid.UUID(answer["payment_id"])

    recorded = await store.read_stream(f"payment-{order_id}")
    assert [e.data for e in recorded][1:] == [
        PaymentCharged(order_id, 1, 1, payment_id, Decimal("12.34"), "EUR"),
        PaymentRefunded(order_id, payment_id, REFUND_REASON),
    ]
    refund = recorded[-1].metadata
    assert refund.causation_id == str(recorded[1].event_id)
    assert refund.correlation_id == "corr-refund"
    assert (refund.actor, refund.service) == ("payment", "payment")
    assert client.app[PAYMENT_METRICS].refunds.get({}) == 1

    # a replay answers as before, neither reports nor refunds again; the order stays charged
    assert await pay(client, payment(order_id)) == answer
    assert (await pay(client, payment(order_id, attempt=2)))["status"] == "already_charged"
    assert len(orders.reports) == 1
    assert len(await store.read_stream(f"payment-{order_id}")) == 3


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"error": {"code": "internal_error", "message": "boom", "details": {}}}),
        (409, {"error": {"code": "conflict", "message": "something else", "details": {}}}),
        (404, {"error": {"code": "not_found", "message": "no order", "details": {}}}),
        (409, {"unexpected": "shape"}),
    ],
)
async def test_a_failed_report_does_not_fail_the_payment(
    client: Client,
    store: PostgresEventStore,
    orders: OrderUpstream,
    status: int,
    body: dict[str, Any],
) -> None:
    orders.status, orders.body = status, body
    order_id = uuid.uuid4()
    answer = await pay(client, payment(order_id))
    assert answer["status"] == "charged"
    assert len(orders.reports) == 1
    assert [type(e) for e in await stream_of(store, order_id)] == [
        PaymentAttempted,
        PaymentCharged,
    ]


async def test_an_unreachable_order_service_does_not_fail_the_payment(
    make_payment: MakePayment, store: PostgresEventStore
) -> None:
    client = await make_payment(order_url=closed_port_url())
    order_id = uuid.uuid4()
    answer = await pay(client, payment(order_id))
    assert (answer["status"], answer["reported"]) == ("charged", False)  # the consumer reports
    assert len(await stream_of(store, order_id)) == 2


# -- the payments of an order --------------------------------------------------------------


async def test_payments_list_every_attempt_of_an_order(
    make_payment: MakePayment, store: PostgresEventStore
) -> None:
    client = await make_payment(payment_success_rate=0.0)
    order_id = uuid.uuid4()
    await pay(client, payment(order_id, attempt=1))
    await pay(client, payment(order_id, attempt=2))
    await put_settings(client, {"success_rate": 1.0})
    charged = await pay(client, payment(order_id, attempt=1, round_=2))

    resp = await client.get(f"/internal/payments/{order_id}", headers=INTERNAL)
    assert resp.status == 200
    listing = await resp.json()
    recorded = await store.read_stream(f"payment-{order_id}")
    attempts = listing.pop("attempts")
    assert listing == {
        "order_id": str(order_id),
        "charged": True,
        "payment_id": charged["payment_id"],
    }
    for entry in attempts:
        assert datetime.fromisoformat(entry.pop("recorded_at"))
    assert attempts == [
        {
            "round": 1,
            "attempt": 1,
            "status": "declined",
            "payment_id": None,
            "reason": DECLINE_REASON,
        },
        {
            "round": 1,
            "attempt": 2,
            "status": "declined",
            "payment_id": None,
            "reason": DECLINE_REASON,
        },
        {
            "round": 2,
            "attempt": 1,
            "status": "charged",
            "payment_id": charged["payment_id"],
            "reason": None,
        },
    ]
    assert len(recorded) == 6


async def test_an_order_without_a_charge_lists_its_declines(
    make_payment: MakePayment,
) -> None:
    client = await make_payment(payment_success_rate=0.0)
    order_id = uuid.uuid4()
    await pay(client, payment(order_id))
    resp = await client.get(f"/internal/payments/{order_id}", headers=INTERNAL)
    listing = await resp.json()
    assert (listing["charged"], listing["payment_id"]) == (False, None)
    assert [a["status"] for a in listing["attempts"]] == ["declined"]


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
async def test_payments_of_an_unknown_order_are_404(client: Client, order_id: str) -> None:
    resp = await client.get(f"/internal/payments/{order_id}", headers=INTERNAL)
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")


# -- metrics -------------------------------------------------------------------------------


async def test_payments_are_counted_by_outcome(make_payment: MakePayment) -> None:
    client = await make_payment(payment_success_rate=1.0)
    order_id = uuid.uuid4()
    await pay(client, payment(order_id, attempt=1))
    await pay(client, payment(order_id, attempt=2))
    await put_settings(client, {"success_rate": 0.0})
    await pay(client, payment(uuid.uuid4()))

    counter = client.app[PAYMENT_METRICS].payments
    assert counter is not None
    for outcome in ("charged", "already_charged", "declined"):
        assert counter.get({"outcome": outcome}) == 1
    text = await (await client.get("/metrics")).text()
    assert "payments_total" in text
    assert 'outcome="already_charged"' in text
    assert client.app[METRICS].service == "payment"

"""Login throttling on the real database: a stranger's failures never lock the owner out on
another client, guessing stays bounded, and the attempts table is swept."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter

from aiohttp import web

from eventstore.pg import Pool
from services.auth.app import create_app, sweep
from tests.conftest import StackEnv
from tests.integration.test_auth_service import (
    Client,
    MakeClient,
    config,
    from_client,
    login,
    register,
)

MAX_FAILURES = 5


async def throttled(
    aiohttp_client: MakeClient, test_env: StackEnv, *accounts: str, window: int = 3600
) -> Client:
    """auth-service with the default 5 free attempts and a long window (so the first wait
    after them, window/256, is far longer than the test takes), with `accounts` registered."""
    settings = config(test_env, login_max_failures=MAX_FAILURES, login_lockout_seconds=window)
    client = await aiohttp_client(create_app(settings))
    for email in accounts:
        await register(client, email)
    return client


def address() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"


async def test_a_stranger_failing_from_one_client_never_locks_the_owner_out_on_another(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    owner = f"olga.{uid}@example.com"
    client = await throttled(aiohttp_client, test_env, owner)
    stranger, home = from_client("127.0.0.2"), from_client("127.0.0.1")

    answers: Counter[int] = Counter()
    for n in range(20):
        resp = await login(client, owner, f"guess-{n}", **stranger)
        answers[resp.status] += 1
    # the stranger got its free guesses and then only refusals (the password unchecked)
    assert answers == {401: MAX_FAILURES, 429: 20 - MAX_FAILURES}

    mine = await login(client, owner, "correct horse", **home)
    assert mine.status == 200, await mine.text()
    still = await login(client, owner, "correct horse", **stranger)
    assert still.status == 429  # even the right password: the stranger's client waits
    assert (await still.json())["error"]["code"] == "login_throttled"


async def test_the_wait_grows_with_every_attempt_made_while_waiting(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    email, guesser = f"hank.{uid}@example.com", from_client(address())
    client = await throttled(aiohttp_client, test_env, email, window=2560)  # first wait: 10 s
    for _ in range(MAX_FAILURES):
        assert (await login(client, email, "guess", **guesser)).status == 401
    waits = []
    for _ in range(4):
        resp = await login(client, email, "guess", **guesser)
        assert resp.status == 429
        waits.append(int(resp.headers["Retry-After"]))
    assert waits == [10, 20, 40, 80]
    capped = [await login(client, email, "guess", **guesser) for _ in range(6)]
    assert int(capped[-1].headers["Retry-After"]) == 2560  # never longer than the window


async def test_many_clients_guessing_one_account_slow_each_other_but_not_the_owner(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    owner = f"ivy.{uid}@example.com"
    client = await throttled(aiohttp_client, test_env, owner)
    botnet = [from_client(address()) for _ in range(5)]
    for bot in botnet[:4]:  # 4 x 5 attempts: the account is under attack
        for _ in range(MAX_FAILURES):
            assert (await login(client, owner, "guess", **bot)).status == 401

    fresh = botnet[4]  # a client new to the account still gets one guess, and then waits
    assert (await login(client, owner, "guess", **fresh)).status == 401
    second = await login(client, owner, "guess", **fresh)
    assert second.status == 429
    assert int(second.headers["Retry-After"]) > 3000  # about the whole window

    # the owner, new to the account's attackers like any client, is let in
    assert (await login(client, owner, "correct horse", **from_client(address()))).status == 200


async def test_one_client_failing_on_many_accounts_is_refused_and_others_are_not(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    victims = [f"victim{n}.{uid}@example.com" for n in range(4 * MAX_FAILURES)]
    real = f"jane.{uid}@example.com"
    client = await throttled(aiohttp_client, test_env, real, *victims)
    stuffer = from_client(address())
    for n in range(50):  # addresses without an account compromise nobody: they do not count
        resp = await login(client, f"nobody{n}.{uid}@example.com", "password123", **stuffer)
        assert resp.status == 401
    for victim in victims:  # one guess at each of 20 accounts
        assert (await login(client, victim, "password123", **stuffer)).status == 401
    assert (await login(client, real, "correct horse", **stuffer)).status == 429
    assert (await login(client, real, "correct horse", **from_client(address()))).status == 200


async def test_parallel_guesses_cannot_slip_past_the_count(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    email, guesser = f"kim.{uid}@example.com", from_client(address())
    client = await throttled(aiohttp_client, test_env, email)
    answers = await asyncio.gather(
        *(login(client, email, f"guess-{n}", **guesser) for n in range(15))
    )
    assert Counter(a.status for a in answers) == {401: MAX_FAILURES, 429: 15 - MAX_FAILURES}


async def test_logging_in_forgives_that_clients_failures(
    aiohttp_client: MakeClient, test_env: StackEnv, uid: str
) -> None:
    email, me = f"lou.{uid}@example.com", from_client(address())
    client = await throttled(aiohttp_client, test_env, email)
    for _ in range(2):
        for _ in range(MAX_FAILURES - 1):  # typos, then the right password
            assert (await login(client, email, "typo", **me)).status == 401
        assert (await login(client, email, "correct horse", **me)).status == 200


async def test_attempts_are_kept_without_the_email_and_swept_after_the_window(
    aiohttp_client: MakeClient, test_env: StackEnv, pool: Pool, uid: str
) -> None:
    client = await throttled(aiohttp_client, test_env, window=1)
    email, ip = f"max.{uid}@example.com", address()
    for _ in range(3):
        assert (await login(client, email, "guess", **from_client(ip))).status == 401
    digest = hashlib.sha256(email.encode()).digest()
    rows = await pool.fetch("SELECT account, client FROM login_failures WHERE client = $1", ip)
    assert [(bytes(r["account"]), r["client"]) for r in rows] == [(digest, ip)] * 3
    as_text = "SELECT count(*) FROM login_failures WHERE strpos(login_failures::text, $1) > 0"
    assert await pool.fetchval(as_text, email) == 0

    await asyncio.sleep(1.1)
    app = client.app
    assert isinstance(app, web.Application)
    await sweep(app)
    assert await pool.fetchval("SELECT count(*) FROM login_failures WHERE client = $1", ip) == 0

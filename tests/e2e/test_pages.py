"""The server-rendered pages on the real stack, driven like a browser without JavaScript:
GET pages, submit forms (with their CSRF token), follow redirects, keep cookies."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

import aiohttp

from tests.e2e.client import signup
from tests.e2e.conftest import Stack
from tests.pages import csrf_of, text_of
from tests.tokens import bearer
from web.session import CSRF_COOKIE, SESSION_COOKIE


def browser(stack: Stack) -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1, like a browser does."""
    return aiohttp.ClientSession(base_url=stack.url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def log_in(session: aiohttp.ClientSession, email: str, password: str, next_: str = "") -> Any:
    form = await (await session.get("/login" + (f"?next={next_}" if next_ else ""))).text()
    return await session.post(
        "/login" + (f"?next={next_}" if next_ else ""),
        data={"csrf_token": csrf_of(form), "email": email, "password": password},
        allow_redirects=False,
    )


async def new_product(http: aiohttp.ClientSession, admin: dict[str, str], name: str) -> Any:
    body = {
        "sku": f"PG-{secrets.token_hex(4)}",
        "name": name,
        "price": "7.25",
        "description": "Made for the page tests.",
    }
    resp = await http.post("/api/products", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_catalog_lists_searches_and_pages_without_javascript(
    http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    word = f"zq{secrets.token_hex(3)}"
    mugs = [await new_product(http, admin, f"{word} mug {i}") for i in range(14)]
    other = await new_product(http, admin, f"plain teapot {secrets.token_hex(3)}")

    first = await http.get("/", params={"q": word})
    assert first.status == 200 and first.content_type == "text/html"
    page = await first.text()
    assert "<script" not in page
    assert "14 products · page 1 of 2" in text_of(page)
    shown = set(re.findall(r'href="/products/([0-9a-f-]{36})"', page))
    assert len(shown) == 12 and shown <= {m["id"] for m in mugs}
    assert other["id"] not in page
    assert f'href="/?q={word}&amp;page=2"' in page
    second = await (await http.get("/", params={"q": word, "page": "2"})).text()
    rest = set(re.findall(r'href="/products/([0-9a-f-]{36})"', second))
    assert rest | shown == {m["id"] for m in mugs} and not rest & shown

    everything = await (await http.get("/")).text()
    assert "Catalog" in everything and "/products/" in everything
    nothing = await (await http.get("/", params={"q": f"nothing{secrets.token_hex(4)}"})).text()
    assert "No products match your search." in text_of(nothing)


async def test_product_page_and_its_404(http: aiohttp.ClientSession, admin: dict[str, str]) -> None:
    product = await new_product(http, admin, f"Page <b>test</b> kettle {secrets.token_hex(2)}")
    resp = await http.get(f"/products/{product['id']}")
    assert resp.status == 200
    page = await resp.text()
    assert "Page &lt;b&gt;test&lt;/b&gt; kettle" in page  # escaped, never markup
    assert "7.25" in page and product["sku"] in page and "Made for the page tests." in page
    assert f'src="/api/products/{product["id"]}/image.svg"' in page
    image = await http.get(f"/api/products/{product['id']}/image.svg")
    assert image.status == 200  # the picture the page shows is there
    missing = await http.get("/products/6f1c2b3a-0000-4000-8000-000000000000")
    assert missing.status == 404
    assert "No such product" in text_of(await missing.text())


async def test_login_sets_a_strict_http_only_cookie_and_honours_next(stack: Stack) -> None:
    async with browser(stack) as session:
        form = await session.get("/login")
        assert "HttpOnly" in form.headers["Set-Cookie"]  # the CSRF nonce
        resp = await log_in(session, stack.admin_email, "wrong password!")
        assert resp.status == 401
        assert "Wrong email or password." in text_of(await resp.text())

        resp = await log_in(
            session, stack.admin_email, stack.admin_password, next_="/admin/projections"
        )
        assert resp.status == 303
        assert resp.headers["Location"] == "/admin/projections"
        cookie = resp.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert not cookie["secure"]  # plain http here; https gets Secure
        assert int(cookie["max-age"]) > 0
        assert resp.cookies[CSRF_COOKIE].value  # a fresh nonce after login
        admin_page = await session.get("/admin/projections")
        assert admin_page.status == 200
        assert stack.admin_email in await admin_page.text()

        away = await log_in(
            session, stack.admin_email, stack.admin_password, next_="//evil.example/steal"
        )
        assert away.headers["Location"] == "/"

        page = await (await session.get("/")).text()
        out = await session.post(
            "/logout", data={"csrf_token": csrf_of(page)}, allow_redirects=False
        )
        assert out.status == 303
        after = await session.get("/admin/projections", allow_redirects=False)
        assert after.status == 302
        assert after.headers["Location"] == "/login?next=/admin/projections"


async def test_login_refuses_a_form_without_its_csrf_token(stack: Stack) -> None:
    async with browser(stack) as session:
        await session.get("/login")
        resp = await session.post(
            "/login",
            data={"email": stack.admin_email, "password": stack.admin_password},
            allow_redirects=False,
        )
        assert resp.status == 403
        assert SESSION_COOKIE not in resp.cookies


async def test_customers_are_not_admins(stack: Stack, http: aiohttp.ClientSession) -> None:
    email, password = f"p-{secrets.token_hex(4)}@example.com", "pass-" + secrets.token_hex(4)
    created = await http.post("/api/auth/register", json={"email": email, "password": password})
    assert created.status == 201
    async with browser(stack) as session:
        assert (await log_in(session, email, password)).status == 303
        for path in ("/admin/events", "/admin/projections", "/admin/logs", "/admin/dead-letters"):
            resp = await session.get(path)
            assert resp.status == 403, path
        assert (await session.get("/orders")).status == 200


async def place_order(
    http: aiohttp.ClientSession, admin: dict[str, str], me: dict[str, str], correlation: str
) -> Any:
    product = await new_product(http, admin, f"Order page lamp {secrets.token_hex(2)}")
    line = {"product_id": product["id"], "quantity": 3}
    assert (await http.post("/api/cart/items", json=line, headers=me)).status == 200
    resp = await http.post("/api/orders", headers={**me, "X-Correlation-ID": correlation})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_order_status_page_for_its_owner_and_admins_only(
    stack: Stack, http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    email, password = f"o-{secrets.token_hex(4)}@example.com", "pass-" + secrets.token_hex(4)
    await http.post("/api/auth/register", json={"email": email, "password": password})
    login = await http.post("/api/auth/login", json={"email": email, "password": password})
    me = bearer((await login.json())["access_token"])
    correlation = f"pages-{secrets.token_hex(6)}"
    order = await place_order(http, admin, me, correlation)
    path = f"/orders/{order['id']}"

    async with browser(stack) as owner:
        visitor = await owner.get(path, allow_redirects=False)
        assert visitor.status == 302  # not logged in yet
        assert (await log_in(owner, email, password, next_=path)).headers["Location"] == path
        async with asyncio.timeout(30):  # PAYMENT_SUCCESS_RATE=1.0 in the e2e stack
            while True:
                page = await (await owner.get(path)).text()
                if "PENDING_PAYMENT" not in page:
                    break
                assert '<meta http-equiv="refresh" content="2">' in page  # updates itself
                await asyncio.sleep(0.1)
        text = text_of(page)
        assert "Status: PAID" in text and '<meta http-equiv="refresh"' not in page
        assert "Order page lamp" in text and "21.75" in text  # 3 x 7.25
        assert "Payment attempts 1" in text
        for event in ("OrderPlaced", "PaymentAttempted", "PaymentCharged", "PaymentSucceeded"):
            assert event in text
        assert "/admin/" not in page  # no operator links for customers
        listed = await (await owner.get("/orders")).text()
        assert f'href="{path}"' in listed

    _, stranger_token = await signup(http)
    async with browser(stack) as stranger:
        stranger.cookie_jar.update_cookies({SESSION_COOKIE: stranger_token})
        resp = await stranger.get(path)
        assert resp.status == 404
        assert "No such order" in text_of(await resp.text())

    async with browser(stack) as operator:
        await log_in(operator, stack.admin_email, stack.admin_password)
        seen = await operator.get(path)
        assert seen.status == 200
        assert f'href="/admin/events?correlation_id={correlation}"' in await seen.text()


async def test_an_admin_follows_an_order_through_the_event_log(
    stack: Stack, http: aiohttp.ClientSession, admin: dict[str, str]
) -> None:
    _, token = await signup(http)
    me = bearer(token)
    correlation = f"chain-{secrets.token_hex(6)}"
    order = await place_order(http, admin, me, correlation)
    async with asyncio.timeout(30):
        while (await (await http.get(f"/api/orders/{order['id']}", headers=me)).json())[
            "status"
        ] != "PAID":
            await asyncio.sleep(0.05)

    async with browser(stack) as operator:
        await log_in(operator, stack.admin_email, stack.admin_password)
        stream = await operator.get(f"/admin/events/stream/order-{order['id']}")
        assert stream.status == 200
        page = await stream.text()
        assert "OrderPlaced" in page and "PaymentSucceeded" in page
        assert f'href="/orders/{order["id"]}"' in page
        placed = re.search(r'<a href="/admin/events/([0-9a-f-]{36})">OrderPlaced</a>', page)
        assert placed is not None

        detail = await (await operator.get(f"/admin/events/{placed.group(1)}")).text()
        assert f"<code>{correlation}</code>" in detail
        chain = detail[detail.index("Correlation chain") :]
        order_of = [
            chain.index(f"<strong>{t}</strong>")
            for t in ("OrderPlaced", "PaymentAttempted", "PaymentCharged", "PaymentSucceeded")
        ]
        assert order_of == sorted(order_of)  # the chain in the order it happened
        assert f"payment-{order['id']}" in chain  # across streams
        succeeded = chain[chain.index("<strong>PaymentSucceeded</strong>") :]
        assert "caused by" in succeeded.split("</li>")[0]  # the charge caused it
        assert 'aria-current="true"' in chain  # the event shown is marked

        events = await (await operator.get("/admin/events", params={"category": "order"})).text()
        assert f"order-{order['id']}" in events
        projections = await operator.get("/admin/projections")
        body = await projections.text()
        assert projections.status == 200
        for name in ("orders", "carts", "products", "streams", "relay"):
            assert f'<tr id="{name}">' in body
        dead = await operator.get("/admin/dead-letters")
        assert dead.status == 200
        assert "order-payments" in await dead.text()
        logs = await operator.get("/admin/logs", params={"correlation_id": correlation})
        assert logs.status in (200, 502, 503, 504)  # log-service may not be built yet
        assert "<h1>Logs</h1>" in await logs.text()

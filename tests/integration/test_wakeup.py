"""Wake-ups of global-log readers: which appends wake whom, across processes' connections,
and how a reader tells that committed events wait behind the fence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore import ANY, LogWatcher, PostgresEventStore
from eventstore.pg import create_pool
from eventstore.wakeup import CHANNEL
from tests.conftest import StackEnv
from tests.samples import Noted, fence_held


def test_a_watcher_of_some_categories_ignores_the_others() -> None:
    watcher = LogWatcher(None, categories=frozenset({"order"}))
    watcher.poke(["cart", "payment"])
    assert watcher.generation == 0
    watcher.poke(["cart", "order"])
    watcher.poke(None)  # unknown: could be anything
    assert watcher.generation == 2
    everything = LogWatcher(None)
    everything.poke(["cart"])
    assert everything.generation == 1


@pytest.fixture
async def other_store(test_env: StackEnv) -> AsyncIterator[PostgresEventStore]:
    """Another process's event store: its own pool and notifier connection."""
    pool = await create_pool(test_env.database_url, max_size=2)
    store = PostgresEventStore(pool, dsn=test_env.database_url)
    yield store
    await store.close()
    await pool.close()


@pytest.fixture
async def payloads(test_env: StackEnv) -> AsyncIterator[asyncio.Queue[str]]:
    """The payloads of every wake-up notification, as another process would hear them."""
    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(test_env.database_url)
    await conn.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
    yield received
    await conn.close()


async def next_payload_naming(payloads: asyncio.Queue[str], category: str) -> str:
    async with asyncio.timeout(10):
        while True:
            payload = await payloads.get()
            if category in payload.split(","):
                return payload


async def test_notifications_name_the_categories_appended_to(
    other_store: PostgresEventStore, payloads: asyncio.Queue[str], uid: str
) -> None:
    category = f"cat{uid}"
    await other_store.append(f"{category}-1", [Noted("x")], ANY)
    payload = await next_payload_naming(payloads, category)
    assert all(name and "-" not in name for name in payload.split(","))


async def test_an_in_transaction_append_notifies_its_category_at_commit(
    other_store: PostgresEventStore, payloads: asyncio.Queue[str], uid: str
) -> None:
    category = f"tx{uid}"
    async with other_store.pool.acquire() as conn, conn.transaction():
        await other_store.append(f"{category}-1", [Noted("in a transaction")], ANY, conn=conn)
    assert await next_payload_naming(payloads, category) == category


async def test_a_page_tells_what_the_fence_holds_back_of_the_categories_asked_for(
    store: PostgresEventStore, test_env: StackEnv, uid: str
) -> None:
    held, other = f"held{uid}", f"free{uid}"
    start = await store.head()
    async with fence_held(test_env.database_url):
        await store.append(f"{held}-1", [Noted("waits")], ANY)
        page = await store.read_page(start)
        assert (page.rows, page.full, page.held_back) == ([], False, True)
        assert (await store.read_page(start, categories=[held])).held_back
        assert not (await store.read_page(start, categories=[other])).held_back
    page = await store.read_page(start)
    assert [r[2] for r in page.rows] == [f"{held}-1"]
    assert (page.full, page.held_back) == (False, False)


async def test_pages_run_up_to_the_fence_and_tell_what_waits_behind_it(
    store: PostgresEventStore, test_env: StackEnv, uid: str
) -> None:
    start = await store.head()
    await store.append(f"paged{uid}-1", [Noted(str(i)) for i in range(5)], ANY)
    async with fence_held(test_env.database_url):
        await store.append(f"paged{uid}-2", [Noted("waits")], ANY)
        pages = [p async for p in store.iter_pages(start, batch_size=2)]
    assert [[r[3] for r in p.rows] for p in pages] == [[1, 2], [3, 4], [5]]
    assert [(p.full, p.held_back) for p in pages] == [(True, True), (True, True), (False, True)]
    # a page that ends exactly at the fence is full: the next one, empty, tells the rest
    exact = [p async for p in store.iter_pages(start, batch_size=3)]
    assert [len(p.rows) for p in exact] == [3, 3, 0]
    assert [p.held_back for p in exact] == [False, False, False]

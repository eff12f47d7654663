"""`execute`, the one write path, on the in-memory store: decide, append, retry lost races."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from eventstore import (
    Aggregate,
    Category,
    ConcurrencyError,
    InMemoryEventStore,
    Metadata,
    RecordedEvent,
    Retry,
    execute,
)
from tests.samples import Noted, RacingStore

COUNTERS = Category("counter")


def total(events: Iterable[object], state: int) -> int:
    return state + sum(e.n for e in events if isinstance(e, Noted))


COUNTER = Aggregate(COUNTERS, total, 0, retry=Retry(attempts=5, base_delay=0, max_delay=0))


class Refused(Exception):
    pass


Decide = Callable[[int], Sequence[object]]


def add(n: int, *, limit: int = 100) -> Decide:
    def decide(state: int) -> Sequence[object]:
        if state + n > limit:
            raise Refused(f"{state} + {n} > {limit}")
        return [Noted("add", n)] if n else []

    return decide


async def test_a_decision_is_appended_at_the_version_it_was_taken_on() -> None:
    store = InMemoryEventStore()
    meta = Metadata(correlation_id="c-1")
    first = await COUNTER.execute(store, "a", add(3), metadata=meta)
    second = await COUNTER.execute(store, "a", add(4))
    assert (first.before.state, first.state, first.version) == (0, 3, 1)
    assert (second.before.state, second.state, second.version) == (3, 7, 2)
    assert second.position is not None and first.position is not None
    assert second.position > first.position
    events = await store.read_stream("counter-a")
    assert [e.data for e in events] == [Noted("add", 3), Noted("add", 4)]
    assert events[0].metadata == meta


async def test_a_decision_that_records_nothing_writes_nothing() -> None:
    store = InMemoryEventStore()
    await COUNTER.execute(store, "a", add(5))
    nothing = await COUNTER.execute(store, "a", add(0))
    assert nothing.appended is None and nothing.position is None
    assert (nothing.state, nothing.version, nothing.events) == (5, 1, ())
    assert await store.stream_version("counter-a") == 1


async def test_a_refusal_comes_out_and_nothing_is_written() -> None:
    store = InMemoryEventStore()
    with pytest.raises(Refused):
        await COUNTER.execute(store, "a", add(101))
    assert await store.stream_version("counter-a") == 0


async def test_a_lost_race_is_decided_again_on_the_new_state() -> None:
    """Two writers decide on the same state; the loser reloads, sees the winner's events and
    decides again: nothing is overwritten, and a decision the new state refuses is refused."""
    decided_on: list[int] = []
    gate = asyncio.Event()

    def slow_add(n: int) -> Decide:
        def decide(state: int) -> Sequence[object]:
            decided_on.append(state)
            return add(n, limit=10)(state)

        return decide

    class Racing(InMemoryEventStore):
        """Writers as if in two processes: they do not take turns (`execute`'s turns)."""

        turns = RacingStore.turns

        async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
            read = await super().read_stream(stream_id, **options)
            await gate.wait()  # both writers read before either appends
            return read

    racing = Racing()
    gate_opener = asyncio.get_running_loop().call_later(0.01, gate.set)
    results = await asyncio.gather(
        COUNTER.execute(racing, "a", slow_add(4)),
        COUNTER.execute(racing, "a", slow_add(5)),
    )
    gate_opener.cancel()
    assert sorted(r.state for r in results) == [4, 9]
    assert decided_on[:2] == [0, 0]  # both decided on the empty stream
    assert len(decided_on) == 3 and decided_on[2] in (4, 5)  # the loser again, on the new one
    assert [e.data.n for e in await racing.read_stream("counter-a")] in ([4, 5], [5, 4])

    with pytest.raises(Refused):  # 9 + 4 > 10, whoever wins
        await COUNTER.execute(racing, "a", slow_add(4))


async def test_writers_of_one_stream_in_one_process_take_turns() -> None:
    """In one process they never lose a race to each other: one attempt each is enough,
    and each decides on what the one before it wrote."""
    gate = asyncio.Event()
    decided_on: list[int] = []

    class Slow(InMemoryEventStore):
        async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
            read = await super().read_stream(stream_id, **options)
            await gate.wait()  # every writer is under way before any appends
            return read

    def counted(state: int) -> Sequence[object]:
        decided_on.append(state)
        return [Noted("add", 1)]

    slow = Slow()
    once = Retry(attempts=1)
    writes = [
        execute(slow, "counter-a", counted, fold=total, initial=0, retry=once) for _ in range(10)
    ]
    opener = asyncio.get_running_loop().call_later(0.01, gate.set)
    results = await asyncio.gather(*writes)
    opener.cancel()
    assert sorted(r.state for r in results) == list(range(1, 11))
    assert decided_on == list(range(10)) and slow.turns == {}  # nothing left behind


async def test_past_the_attempts_the_conflict_comes_out() -> None:
    class Busy(InMemoryEventStore):
        """Another writer appends right after every read of ours."""

        async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
            read = await super().read_stream(stream_id, **options)
            await super().append("counter-a", [Noted("theirs", 1)], None)
            return read

    busy = Busy()
    tries: list[int] = []

    def decide(state: int) -> Sequence[object]:
        tries.append(state)
        return [Noted("ours", 1)]

    with pytest.raises(ConcurrencyError):
        await COUNTER.execute(busy, "a", decide)
    assert tries == [0, 1, 2, 3, 4]  # the policy's five attempts, each on fresher state
    assert {e.data.text for e in await busy.read_stream("counter-a")} == {"theirs"}


async def test_a_snapshot_is_folded_on_and_only_the_tail_is_read() -> None:
    store = InMemoryEventStore()
    for n in (1, 2, 3, 4):
        await COUNTER.execute(store, "a", add(n))

    async def snapshot(conn: object) -> tuple[int, int]:
        assert conn is None
        return 6, 3  # the state after versions 1..3

    loaded = await COUNTER.load(store, "a", snapshot=snapshot)
    assert (loaded.state, loaded.version) == (10, 4)
    assert [e.stream_version for e in loaded.recorded] == [4]
    done = await COUNTER.execute(store, "a", add(5), snapshot=snapshot)
    assert (done.state, done.version) == (15, 5)


REMEMBERING = dataclasses.replace(COUNTER, remembers=True)


class Reads(InMemoryEventStore):
    """The in-memory store, counting the stream reads and the appends that lost a race."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.lost = 0
        self.append_observers.append(self._count)

    def _count(self, stream_id: str, events: int, seconds: float, outcome: str) -> None:
        self.lost += outcome == "conflict"

    async def read_stream(self, stream_id: str, **options: Any) -> list[RecordedEvent]:
        self.reads += 1
        return await super().read_stream(stream_id, **options)


async def test_an_aggregate_that_remembers_writes_again_without_reading() -> None:
    store = Reads()
    await REMEMBERING.execute(store, "a", add(3))  # reads the (empty) stream once
    second = await REMEMBERING.execute(store, "a", add(4))
    third = await REMEMBERING.execute(store, "a", add(5))
    assert store.reads == 1
    assert (second.before.state, second.before.version) == (3, 1)
    assert (second.state, second.version) == (7, 2)
    assert (third.state, third.version) == (12, 3)
    assert [e.data.n for e in await store.read_stream("counter-a")] == [3, 4, 5]
    forgetful = Reads()  # the same writes without remembering read every time
    for n in (3, 4, 5):
        await COUNTER.execute(forgetful, "a", add(n))
    assert forgetful.reads == 3


async def test_a_load_is_remembered_for_the_next_write() -> None:
    store = Reads()
    await store.append("counter-a", [Noted("add", 2)], 0)
    loaded = await REMEMBERING.load(store, "a")
    done = await REMEMBERING.execute(store, "a", add(1))
    assert (loaded.state, done.state, done.version, store.reads) == (2, 3, 2, 1)


async def test_a_stream_another_writer_moved_on_is_loaded_and_decided_again() -> None:
    store = Reads()
    await REMEMBERING.execute(store, "a", add(3))
    await store.append("counter-a", [Noted("theirs", 10)], 1)  # another process's write
    done = await REMEMBERING.execute(store, "a", add(4))
    assert (store.lost, done.before.state, done.state, done.version) == (1, 13, 17, 3)
    assert [e.data.n for e in await store.read_stream("counter-a")] == [3, 10, 4]
    again = await REMEMBERING.execute(store, "a", add(1))  # remembered again
    assert (again.state, store.lost, store.reads) == (18, 1, 3)


async def test_a_refusal_on_a_remembered_state_is_checked_on_the_loaded_one() -> None:
    store = Reads()
    await REMEMBERING.execute(store, "a", add(60))
    await store.append("counter-a", [Noted("theirs", -50)], 1)
    # 60 + 30 > 100 on what this process remembers, but the stream says 10 + 30
    done = await REMEMBERING.execute(store, "a", add(30))
    assert (done.state, done.version) == (40, 3)
    await store.append("counter-a", [Noted("theirs", -40)], 3)
    # nothing to record on what it remembers; the stream holds another story
    assert (await REMEMBERING.execute(store, "a", add(0))).state == 0
    with pytest.raises(Refused):  # a refusal on the loaded state comes out
        await REMEMBERING.execute(store, "a", add(101))


async def test_the_module_function_takes_any_stream_name() -> None:
    store = InMemoryEventStore()
    done = await execute(store, "tally-1", add(2), fold=total, initial=0)
    assert done.state == 2 and await store.stream_version("tally-1") == 1


def test_categories_name_streams_and_read_them_back() -> None:
    orders = Category("order")
    assert orders.stream("0b6f-42") == "order-0b6f-42"
    assert orders.id_of("order-0b6f-42") == "0b6f-42"
    assert orders.owns("order-1") and not orders.owns("orders-1") and not orders.owns("order-")
    with pytest.raises(ValueError, match="not a order stream"):
        orders.id_of("cart-1")
    with pytest.raises(ValueError, match="lowercase"):
        Category("Order-x")
    with pytest.raises(ValueError, match="non-empty"):
        orders.stream("")

"""The `EventStore` contract: one suite, run against every implementation of the port.

`tests/integration/test_store.py` runs it on Postgres, `tests/unit/test_memory_store.py`
in memory (the shape of the `eventsourcing` library's recorder test cases). A subclass
provides the `store` fixture; streams are named per test (`uid`), so a shared database
is fine.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from eventstore import (
    ANY,
    NO_STREAM,
    START,
    ConcurrencyError,
    Dropped,
    DuplicateEventError,
    EventRegistry,
    EventStore,
    Loaded,
    Metadata,
    Position,
    RecordedEvent,
    Undecodable,
    UnknownEventType,
    load,
)
from eventstore.errors import UpcastError
from tests.samples import Noted, Priced


async def visible(
    store: EventStore,
    after: Position,
    part: str,
    count: int,
    categories: set[str] | None = None,
) -> list[RecordedEvent]:
    """The global log's events of streams whose id contains `part` after `after`, once
    `count` of them are there: readers see a commit when every older transaction has
    ended, and other tests sharing the database may hold one open for a moment."""
    async with asyncio.timeout(10):
        while True:
            batch = await store.read_all(after, limit=100_000, categories=categories)
            found = [e for e in batch if part in e.stream_id]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)


class EventStoreContract:
    """What every `EventStore` guarantees (its docstring lists them)."""

    async def test_append_and_read_stream_round_trip(self, store: EventStore, uid: str) -> None:
        stream = f"cart-{uid}"
        meta = Metadata(
            correlation_id="corr-1", causation_id="cause-1", actor="user-7", service="cart"
        )
        first = await store.append(
            stream, [Priced("sku-1", Decimal("19.99"))], NO_STREAM, metadata=meta
        )
        second = await store.append(stream, [Noted("a"), Noted("b", 2)], 1)

        assert first.version == 1
        assert second.version == 3
        assert second.position > first.position
        events = await store.read_stream(stream)
        assert [e.stream_version for e in events] == [1, 2, 3]
        assert events[0].data == Priced("sku-1", Decimal("19.99"))
        assert isinstance(events[0].data.price, Decimal)
        assert events[0].metadata == meta
        assert events[0].event_id == first.event_ids[0]
        assert [e.data for e in events[1:]] == [Noted("a"), Noted("b", 2)]
        assert events[2].position == second.position
        assert [e.event_type for e in events] == ["TestPriced", "TestNoted", "TestNoted"]
        assert all(e.stream_id == stream and e.schema_version == 1 for e in events)
        assert await store.stream_version(stream) == 3
        assert await store.read_stream(f"cart-missing-{uid}") == []
        assert await store.stream_version(f"cart-missing-{uid}") == 0

    async def test_read_stream_after_a_version_and_up_to_a_limit(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        await store.append(stream, [Noted(str(i)) for i in range(6)], NO_STREAM)
        tail = await store.read_stream(stream, after_version=2)
        assert [e.data.text for e in tail] == ["2", "3", "4", "5"]
        assert [e.stream_version for e in await store.read_stream(stream, limit=2)] == [1, 2]
        page = await store.read_stream(stream, after_version=4, limit=10)
        assert [e.stream_version for e in page] == [5, 6]

    async def test_same_expected_version_exactly_one_wins(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        await store.append(stream, [Noted("start")], NO_STREAM)

        results = await asyncio.gather(
            *(store.append(stream, [Noted(f"w{i}")], 1) for i in range(12)),
            return_exceptions=True,
        )

        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1
        assert len(losers) == 11
        assert all(isinstance(e, ConcurrencyError) for e in losers)
        assert all(e.expected == 1 and e.actual == 2 for e in losers)  # type: ignore[attr-defined]
        assert await store.stream_version(stream) == 2

    async def test_expected_version_ahead_of_stream_is_a_conflict(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        with pytest.raises(ConcurrencyError) as caught:
            await store.append(stream, [Noted("x")], 3)
        assert caught.value.actual == 0
        assert caught.value.stream_id == stream
        await store.append(stream, [Noted("x")], NO_STREAM)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, [Noted("again")], NO_STREAM)
        assert await store.stream_version(stream) == 1

    async def test_any_version_appends_after_whatever_is_there(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        appends = (store.append(stream, [Noted(str(i))], ANY) for i in range(8))
        results = await asyncio.gather(*appends)
        assert sorted(r.version for r in results) == list(range(1, 9))
        assert [e.stream_version for e in await store.read_stream(stream)] == list(range(1, 9))

    async def test_multi_event_append_is_atomic(self, store: EventStore, uid: str) -> None:
        stream = f"cart-{uid}"
        taken = uuid.uuid4()
        await store.append(f"other-{uid}", [Noted("owner")], NO_STREAM, event_ids=[taken])

        with pytest.raises(DuplicateEventError):
            await store.append(
                stream, [Noted("a"), Noted("b")], NO_STREAM, event_ids=[uuid.uuid4(), taken]
            )
        with pytest.raises(UnknownEventType):
            await store.append(stream, [Noted("a"), object()], NO_STREAM)

        assert await store.read_stream(stream) == []
        assert await store.stream_version(stream) == 0

    async def test_given_event_ids_are_kept(self, store: EventStore, uid: str) -> None:
        ids = [uuid.uuid4(), uuid.uuid4()]
        result = await store.append(
            f"cart-{uid}", [Noted("a"), Noted("b")], NO_STREAM, event_ids=ids
        )
        assert list(result.event_ids) == ids
        assert [e.event_id for e in await store.read_stream(f"cart-{uid}")] == ids

    async def test_a_retried_append_returns_the_original_result(
        self, store: EventStore, uid: str
    ) -> None:
        """The same ids at the same positions: a retry of a write that went through (its
        answer was lost) succeeds with the first result and writes nothing."""
        stream = f"cart-{uid}"
        await store.append(stream, [Noted("before")], NO_STREAM)
        ids = [uuid.uuid4(), uuid.uuid4()]
        first = await store.append(stream, [Noted("a"), Noted("b")], 1, event_ids=ids)
        again = await store.append(stream, [Noted("a"), Noted("b")], 1, event_ids=ids)
        assert again == first
        assert await store.append(stream, [Noted("a"), Noted("b")], ANY, event_ids=ids) == first
        single = [uuid.uuid4()]
        one = await store.append(stream, [Noted("c")], 3, event_ids=single)
        assert await store.append(stream, [Noted("c")], 3, event_ids=single) == one
        assert [e.data.text for e in await store.read_stream(stream)] == ["before", "a", "b", "c"]

    async def test_the_same_ids_anywhere_else_are_a_duplicate(
        self, store: EventStore, uid: str
    ) -> None:
        stream, other = f"cart-{uid}", f"cart-other-{uid}"
        ids = [uuid.uuid4(), uuid.uuid4()]
        await store.append(stream, [Noted("a"), Noted("b")], NO_STREAM, event_ids=ids)
        await store.append(stream, [Noted("c")], 2)
        with pytest.raises(DuplicateEventError):  # another stream
            await store.append(other, [Noted("a"), Noted("b")], NO_STREAM, event_ids=ids)
        with pytest.raises(DuplicateEventError):  # the same stream, other positions
            await store.append(stream, [Noted("a"), Noted("b")], 3, event_ids=ids)
        with pytest.raises(DuplicateEventError):  # stored at 1-2; this would put them at 2-3
            await store.append(stream, [Noted("a"), Noted("b")], 1, event_ids=ids)
        with pytest.raises(DuplicateEventError):  # only some of them
            await store.append(
                stream, [Noted("a"), Noted("x")], 3, event_ids=[ids[0], uuid.uuid4()]
            )
        with pytest.raises(DuplicateEventError):  # in another order
            await store.append(stream, [Noted("b"), Noted("a")], 3, event_ids=ids[::-1])
        assert await store.stream_version(stream) == 3
        assert await store.read_stream(other) == []

    async def test_bad_arguments_are_refused_before_anything_is_written(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        with pytest.raises(ValueError, match="at least one event"):
            await store.append(stream, [], NO_STREAM)
        with pytest.raises(ValueError, match="one to one"):
            await store.append(stream, [Noted("a")], NO_STREAM, event_ids=[])
        with pytest.raises(ValueError, match=">= 0"):
            await store.append(stream, [Noted("a")], -1)
        assert await store.read_stream(stream) == []

    async def test_global_log_is_in_commit_order_and_resumes_after_a_position(
        self, store: EventStore, uid: str
    ) -> None:
        start = await store.head()
        for i in range(25):
            await store.append(f"order{uid}-{i % 3}", [Noted(str(i))], ANY)
        mine = await visible(store, start, f"order{uid}-", 25)
        assert [e.data.text for e in mine] == [str(i) for i in range(25)]
        positions = [e.position for e in mine]
        assert positions == sorted(positions) and len(set(positions)) == 25
        rest = await visible(store, mine[10].position, f"order{uid}-", 14)
        assert [e.data.text for e in rest] == [str(i) for i in range(11, 25)]
        assert await store.head() >= mine[-1].position
        batch = await store.read_all(start, limit=4)
        assert len(batch) == 4

    async def test_global_log_decodes_only_the_categories_asked_for(
        self, store: EventStore, uid: str
    ) -> None:
        start = await store.head()
        await store.append(f"mine{uid}-1", [Noted("kept")], NO_STREAM)
        await store.append(f"theirs{uid}-1", [Noted("skipped")], NO_STREAM)
        events = await visible(store, start, "", 2, categories={f"mine{uid}"})
        events = [e for e in events if uid in e.stream_id]
        while len(events) < 2:  # both visible: the fence passed them
            events = [
                e
                for e in await visible(store, start, "", 2, categories={f"mine{uid}"})
                if uid in e.stream_id
            ]
        by_stream = {e.stream_id: e for e in events}
        assert by_stream[f"mine{uid}-1"].data == Noted("kept")
        assert by_stream[f"theirs{uid}-1"].data is None  # read, but not decoded
        assert by_stream[f"theirs{uid}-1"].event_type == "TestNoted"

    async def test_old_versions_are_upcast_and_newer_ones_refused(
        self, store: EventStore, uid: str
    ) -> None:
        """Events written by v1 of a type read as v2 through its upcaster; a reader that
        only knows v1 refuses v2 instead of reading it wrong."""
        type_name = f"Evolving{uid}"
        v1 = EventRegistry()
        v1.register(Noted, name=type_name, version=1)
        v2 = EventRegistry()
        v2.register(Priced, name=type_name, version=2)

        @v2.upcaster(type_name, from_version=1)
        def noted_to_priced(data: dict[str, object]) -> dict[str, object]:
            return {"sku": data["text"], "price": str(Decimal(int(str(data["n"]))) / 100)}

        stream, newer = f"product-{uid}", f"product-newer-{uid}"
        start = await store.head()
        shared = store.registry
        try:
            store.registry = v1
            await store.append(stream, [Noted("sku-9", 1999)], NO_STREAM)
            store.registry = v2
            [event] = await store.read_stream(stream)
            assert event.schema_version == 1
            assert event.data == Priced("sku-9", Decimal("19.99"))
            await store.append(newer, [Priced("sku-2", Decimal("1.50"))], NO_STREAM)
            store.registry = v1
            with pytest.raises(UpcastError, match="newer than this code"):
                await store.read_stream(newer)  # a writer must not decide on what it misread
            # the global log goes on: its readers park or report such an event
            seen = {e.stream_id: e.data for e in await visible(store, start, uid, 2)}
            assert seen[stream] == Noted("sku-9", 1999)
            assert isinstance(seen[newer], Undecodable)
            assert "newer than this code" in seen[newer].reason
        finally:
            store.registry = shared

    async def test_upcasters_that_rename_split_and_drop_keep_the_stream_version(
        self, store: EventStore, uid: str
    ) -> None:
        """One stored row may stand for several events today (split, sharing its envelope)
        or none (`Dropped` data): readers see them in order, folds skip what was dropped,
        and the stream's version is still its number of rows."""
        old, split_type, gone = f"Bundle{uid}", f"Renamed{uid}", f"Touched{uid}"
        writer = EventRegistry()
        writer.register(Noted, name=old)
        writer.register(Priced, name=gone)
        reader = EventRegistry()
        reader.register(Noted, name="TestNoted")
        reader.register(Priced, name="TestPriced")
        reader.rename(old, 1, to=split_type)

        @reader.upcaster(split_type, from_version=1)
        def split(data: dict[str, object]) -> list[tuple[str, int, dict[str, object]]]:
            return [
                ("TestNoted", 1, {"text": data["text"], "n": k}) for k in range(int(str(data["n"])))
            ]

        reader.upcaster(gone, from_version=1)(lambda data: [])
        stream = f"cart-{uid}"
        start = await store.head()
        shared = store.registry
        try:
            store.registry = writer
            await store.append(
                stream, [Noted("x", 2), Priced("p", Decimal(1)), Noted("y", 0)], NO_STREAM
            )
            store.registry = reader
            events = await store.read_stream(stream)
            assert [(e.stream_version, e.event_type, e.data) for e in events] == [
                (1, old, Noted("x", 0)),
                (1, old, Noted("x", 1)),
                (2, gone, Dropped(gone, 1)),
                (3, old, Dropped(old, 1)),  # split into nothing
            ]
            assert events[0].event_id == events[1].event_id  # one stored event
            loaded: Loaded[list[object]] = await load(store, stream, lambda es, s: [*s, *es], [])
            assert loaded.state == [Noted("x", 0), Noted("x", 1)] and loaded.version == 3
            assert await store.read_stream(stream, after_version=1) == events[2:]
            logged = await visible(store, start, uid, 4)
            assert [e.data for e in logged] == [e.data for e in events]
        finally:
            store.registry = shared

    async def test_observers_hear_of_every_append(self, store: EventStore, uid: str) -> None:
        heard: list[tuple[str, int, str]] = []

        def observe(stream_id: str, count: int, seconds: float, outcome: str) -> None:
            assert seconds >= 0
            heard.append((stream_id, count, outcome))

        def broken(stream_id: str, count: int, seconds: float, outcome: str) -> None:
            raise RuntimeError("an observer's bug never fails an append")

        store.append_observers.extend([broken, observe])
        try:
            await store.append(f"cart-{uid}", [Noted("a"), Noted("b")], NO_STREAM)
            with pytest.raises(ConcurrencyError):
                await store.append(f"cart-{uid}", [Noted("c")], NO_STREAM)
        finally:
            store.append_observers.remove(broken)
            store.append_observers.remove(observe)
        assert heard == [(f"cart-{uid}", 2, "ok"), (f"cart-{uid}", 0, "conflict")]

    # -- concurrent appends (a store may send them together: each keeps its own result) ---

    async def test_concurrent_appends_to_distinct_streams_all_land(
        self, store: EventStore, uid: str
    ) -> None:
        streams = [f"cart{uid}-{i}" for i in range(40)]
        await asyncio.gather(*(store.append(s, [Noted("first")], NO_STREAM) for s in streams[::2]))
        results = await asyncio.gather(
            *(
                store.append(s, [Noted(f"{s}.{k}") for k in range(1 + i % 3)], 1 - i % 2)
                for i, s in enumerate(streams)
            )
        )
        for i, (stream, result) in enumerate(zip(streams, results, strict=True)):
            events = await store.read_stream(stream)
            written = 1 + i % 3
            assert result.version == (written if i % 2 else written + 1)
            assert [e.stream_version for e in events] == list(range(1, result.version + 1))
            assert [e.event_id for e in events[-written:]] == list(result.event_ids)
            assert [e.data.text for e in events[-written:]] == [
                f"{stream}.{k}" for k in range(written)
            ]
            assert events[-1].position == result.position
        positions = [r.position for r in results]
        assert len(set(positions)) == len(positions)
        written = sum(len(r.event_ids) for r in results)
        logged = {e.event_id for e in await visible(store, START, f"cart{uid}-", 20 + written)}
        assert all(i in logged for r in results for i in r.event_ids)

    async def test_racing_writers_of_one_stream_among_others_lose_nothing(
        self, store: EventStore, uid: str
    ) -> None:
        """Same expected version from many writers at once, mixed with appends to other
        streams: one of them wins, the others get `ConcurrencyError`, the rest all land."""
        stream = f"cart-{uid}"
        await store.append(stream, [Noted("start")], NO_STREAM)
        racing = [store.append(stream, [Noted(f"w{i}")], 1) for i in range(10)]
        others = [store.append(f"cart{uid}-{i}", [Noted("o")], NO_STREAM) for i in range(10)]
        results = await asyncio.gather(*racing, *others, return_exceptions=True)

        raced, rest = results[:10], results[10:]
        winners = [r for r in raced if not isinstance(r, BaseException)]
        assert len(winners) == 1
        losers = [r for r in raced if isinstance(r, BaseException)]
        assert all(
            isinstance(e, ConcurrencyError) and (e.expected, e.actual) == (1, 2) for e in losers
        )
        assert all(not isinstance(r, BaseException) and r.version == 1 for r in rest)
        events = await store.read_stream(stream)
        assert [e.data.text for e in events[1:]] == [f"w{raced.index(winners[0])}"]
        assert events[-1].event_id == winners[0].event_ids[0]
        for i in range(10):
            assert await store.stream_version(f"cart{uid}-{i}") == 1

    async def test_a_wrong_expected_version_fails_only_its_own_append(
        self, store: EventStore, uid: str
    ) -> None:
        await store.append(f"cart{uid}-behind", [Noted("a"), Noted("b")], NO_STREAM)
        for wrong, expected, actual in (("ahead", 5, 0), ("behind", 1, 2)):
            appends = [
                store.append(f"cart{uid}-{wrong}{i}", [Noted(str(i))], NO_STREAM) for i in range(8)
            ]
            appends.insert(4, store.append(f"cart{uid}-{wrong}", [Noted("x")], expected))
            results = await asyncio.gather(*appends, return_exceptions=True)

            failed = results.pop(4)
            assert isinstance(failed, ConcurrencyError)
            assert (failed.stream_id, failed.expected, failed.actual) == (
                f"cart{uid}-{wrong}",
                expected,
                actual,
            )
            assert await store.stream_version(f"cart{uid}-{wrong}") == actual
            assert all(not isinstance(r, BaseException) and r.version == 1 for r in results)
            for i in range(8):
                events = await store.read_stream(f"cart{uid}-{wrong}{i}")
                assert [e.data.text for e in events] == [str(i)]

    async def test_a_duplicate_id_among_concurrent_appends_fails_only_its_own(
        self, store: EventStore, uid: str
    ) -> None:
        taken = uuid.uuid4()
        await store.append(f"cart{uid}-owner", [Noted("owner")], NO_STREAM, event_ids=[taken])
        appends = [store.append(f"cart{uid}-{i}", [Noted(str(i))], NO_STREAM) for i in range(12)]
        appends.insert(
            5,
            store.append(
                f"cart{uid}-dup",
                [Noted("a"), Noted("b")],
                NO_STREAM,
                event_ids=[uuid.uuid4(), taken],
            ),
        )
        results = await asyncio.gather(*appends, return_exceptions=True)

        duplicate = results.pop(5)
        assert isinstance(duplicate, DuplicateEventError)
        assert str(taken) in duplicate.event_ids
        assert all(not isinstance(r, BaseException) and r.version == 1 for r in results)
        assert await store.read_stream(f"cart{uid}-dup") == []
        for i in range(12):
            assert [e.data.text for e in await store.read_stream(f"cart{uid}-{i}")] == [str(i)]

    async def test_a_retry_among_concurrent_appends_returns_the_original_result(
        self, store: EventStore, uid: str
    ) -> None:
        stream = f"cart-{uid}"
        ids = [uuid.uuid4(), uuid.uuid4()]
        first = await store.append(stream, [Noted("a"), Noted("b")], NO_STREAM, event_ids=ids)
        others = [store.append(f"cart{uid}-{i}", [Noted(str(i))], NO_STREAM) for i in range(12)]
        retries = [
            store.append(stream, [Noted("a"), Noted("b")], NO_STREAM, event_ids=ids),
            store.append(stream, [Noted("a"), Noted("b")], ANY, event_ids=ids),
        ]
        results = await asyncio.gather(*others[:6], *retries, *others[6:])

        assert results[6:8] == [first, first]
        assert all(r.version == 1 for r in results[:6] + results[8:])
        assert [e.data.text for e in await store.read_stream(stream)] == ["a", "b"]

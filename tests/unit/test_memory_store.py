"""The in-memory event store keeps the same contract as Postgres (no database needed)."""

from __future__ import annotations

import pytest

from eventstore import NO_STREAM, InMemoryEventStore
from tests.contract.eventstore import EventStoreContract
from tests.samples import Noted


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()


async def test_it_joins_no_transactions() -> None:
    store = InMemoryEventStore()
    with pytest.raises(TypeError, match="no transactions"):
        await store.append("cart-1", [Noted("a")], NO_STREAM, conn=object())
    assert await store.read_stream("cart-1") == []

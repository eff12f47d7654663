"""`events show` and `events replay` as debugging tools: prefixes, correlations, windows
of the log, a point in time, the final state, JSON."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from eventstore import ANY, Metadata, PostgresEventStore
from tests.conftest import StackEnv
from tests.integration.test_cli import microshop
from tests.samples import Noted


@pytest.fixture
async def story(store: PostgresEventStore, uid: str) -> dict[str, object]:
    """Two streams of one correlation, a third of another; a time between two events."""
    first = await store.append(
        f"dbg{uid}-alpha", [Noted("a1")], ANY, metadata=Metadata(correlation_id=f"c{uid}")
    )
    await asyncio.sleep(0.05)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    second = await store.append(
        f"dbg{uid}-alpha", [Noted("a2")], ANY, metadata=Metadata(correlation_id=f"c{uid}")
    )
    await store.append(
        f"dbg{uid}-beta", [Noted("b1")], ANY, metadata=Metadata(correlation_id=f"c{uid}")
    )
    await store.append(
        f"dbg{uid}-gamma", [Noted("g1")], ANY, metadata=Metadata(correlation_id="other")
    )
    return {
        "first": first.position.global_position,
        "second": second.position.global_position,
        "between": between,
    }


async def cli(test_env: StackEnv, *args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(microshop, test_env, *args)
    return result.returncode, result.stdout, result.stderr


async def test_show_takes_a_unique_prefix_and_refuses_an_ambiguous_one(
    test_env: StackEnv, uid: str, story: dict[str, object]
) -> None:
    code, out, err = await cli(test_env, "events", "show", f"dbg{uid}-al")
    assert code == 0, err
    assert f"dbg{uid}-alpha — 2 events" in out and "a2" in out

    code, out, err = await cli(test_env, "events", "show", f"dbg{uid}-")
    assert code == 1
    assert "is the start of several streams" in err
    assert all(f"dbg{uid}-{s}" in err for s in ("alpha", "beta", "gamma"))

    code, _, err = await cli(test_env, "events", "show", f"dbg{uid}-zeta")
    assert code == 1 and "has no events" in err
    code, _, err = await cli(test_env, "events", "show")
    assert code == 2 and "give a STREAM or --correlation ID" in err


async def test_show_follows_one_correlation_across_streams(
    test_env: StackEnv, uid: str, story: dict[str, object]
) -> None:
    code, out, err = await cli(test_env, "events", "show", "--correlation", f"c{uid}", "--json")
    assert code == 0, err
    shown = [json.loads(line) for line in out.splitlines()]
    assert [(e["stream_id"], e["data"]["text"]) for e in shown] == [
        (f"dbg{uid}-alpha", "a1"),
        (f"dbg{uid}-alpha", "a2"),
        (f"dbg{uid}-beta", "b1"),
    ]
    code, out, _ = await cli(test_env, "events", "show", "--correlation", f"c{uid}")
    assert code == 0 and f"dbg{uid}-beta@1" in out
    code, _, err = await cli(test_env, "events", "show", "--correlation", f"none{uid}")
    assert code == 1 and "no events with correlation id" in err


async def test_replay_from_a_position_shows_rows_as_they_really_were(
    test_env: StackEnv, uid: str, story: dict[str, object]
) -> None:
    stream = f"dbg{uid}-alpha"
    code, out, err = await cli(
        test_env, "events", "replay", "--projection", "streams", "--stream", stream,
        "--from-position", str(story["second"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    [step] = [json.loads(line) for line in out.splitlines()]
    assert step["global_position"] == story["second"]
    assert step["row"]["event_count"] == 2  # the first event was folded, not shown

    code, out, err = await cli(
        test_env, "events", "replay", "--projection", "streams", "--stream", stream,
        "--to-position", str(story["first"]), "--final",
    )  # fmt: skip
    assert code == 0, err
    assert '"event_count": 1' in out
    assert "1 events replayed into streams (nothing written); 1 rows at the end" in out

    code, _, err = await cli(
        test_env, "events", "replay", "--projection", "streams",
        "--from-position", "9", "--to-position", "3",
    )  # fmt: skip
    assert code == 2 and "must not be after --to-position" in err


async def test_replay_as_of_a_time_gives_the_state_then(
    test_env: StackEnv, uid: str, story: dict[str, object]
) -> None:
    between = story["between"]
    assert isinstance(between, datetime)
    code, out, err = await cli(
        test_env, "events", "replay", "--projection", "streams", "--stream", f"dbg{uid}-alpha",
        "--as-of", between.isoformat(), "--final", "--json",
    )  # fmt: skip
    assert code == 0, err
    [final] = [json.loads(line) for line in out.splitlines()]
    assert (final["key"], final["row"]["event_count"]) == (f"dbg{uid}-alpha", 1)

    code, _, err = await cli(
        test_env, "events", "replay", "--projection", "streams", "--as-of", "yesterday"
    )
    assert code == 2 and "is not an ISO 8601 time" in err

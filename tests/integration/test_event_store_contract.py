"""One contract suite for every event store: the PostgreSQL one and its in-memory twin."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.common.eventstore import (
    ANY_VERSION,
    NO_STREAM,
    AppendRequest,
    ConcurrencyError,
    EncodedEvent,
    EventStore,
    NewEvent,
)
from services.common.eventstore.memory import MemoryEventStore
from services.common.eventstore.postgres import PostgresEventStore, append_on

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def ev(kind: str = "thing.happened.v1", at: datetime = T0, **data: object) -> NewEvent:
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event_type=kind,
        data=dict(data),
        occurred_at=at,
        metadata={"correlationid": "c-1", "causationid": "e-0"},
    )


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> EventStore:
    if request.param == "memory":
        return MemoryEventStore()
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return PostgresEventStore(pool)


async def test_appends_and_reads_a_stream_in_order(store: EventStore) -> None:
    events = [ev(n=i) for i in range(3)]
    recorded = await store.append([AppendRequest("case-1", NO_STREAM, events)])
    assert [r.version for r in recorded] == [1, 2, 3]
    read = await store.read_stream("case-1")
    assert [r.event_id for r in read] == [e.event_id for e in events]
    assert [r.data["n"] for r in read] == [0, 1, 2]
    assert read[0].correlation_id == "c-1"
    assert read[0].causation_id == "e-0"
    assert [r.global_position for r in read] == sorted(r.global_position for r in read)


async def test_a_stale_expected_version_raises_concurrency_error(store: EventStore) -> None:
    await store.append([AppendRequest("s", NO_STREAM, [ev()])])
    with pytest.raises(ConcurrencyError) as info:
        await store.append([AppendRequest("s", NO_STREAM, [ev()])])
    assert (info.value.expected, info.value.actual) == (0, 1)
    await store.append([AppendRequest("s", 1, [ev()])])
    assert len(await store.read_stream("s")) == 2


async def test_an_expected_version_behind_the_stream_never_leaves_a_gap(store: EventStore) -> None:
    await store.append([AppendRequest("s", NO_STREAM, [ev(), ev()])])
    with pytest.raises(ConcurrencyError):
        await store.append([AppendRequest("s", 5, [ev()])])
    assert [r.version for r in await store.read_stream("s")] == [1, 2]


async def test_the_same_event_id_twice_is_one_event(store: EventStore) -> None:
    e = ev()
    first = await store.append([AppendRequest("s", NO_STREAM, [e])])
    again = await store.append([AppendRequest("s", NO_STREAM, [e])])  # stale version, retried
    assert again == []
    assert len(await store.read_stream("s")) == 1
    assert await store.head_position() == first[0].global_position


async def test_a_batch_is_all_or_nothing(store: EventStore) -> None:
    await store.append([AppendRequest("b", NO_STREAM, [ev()])])
    with pytest.raises(ConcurrencyError):
        await store.append([AppendRequest("a", NO_STREAM, [ev()]), AppendRequest("b", NO_STREAM, [ev()])])
    assert await store.read_stream("a") == []
    assert await store.head_position() == 1


async def test_several_requests_for_one_stream_in_a_batch_chain_their_versions(
    store: EventStore,
) -> None:
    await store.append([AppendRequest("s", NO_STREAM, [ev()]), AppendRequest("s", 1, [ev(), ev()])])
    assert [r.version for r in await store.read_stream("s")] == [1, 2, 3]


async def test_reads_the_log_by_position_type_and_time(store: EventStore) -> None:
    await store.append(
        [
            AppendRequest("x", ANY_VERSION, [ev("a.v1", T0), ev("b.v1", T0 + timedelta(hours=1))]),
            AppendRequest("y", ANY_VERSION, [ev("a.v1", T0 + timedelta(hours=2))]),
        ]
    )
    everything = await store.read_all()
    assert [e.global_position for e in everything] == [1, 2, 3]
    assert [e.global_position for e in await store.read_all(after_position=1)] == [2, 3]
    assert [e.global_position for e in await store.read_all(limit=2)] == [1, 2]
    only_a = await store.read_all(types=["a.v1"])
    assert [e.stream_id for e in only_a] == ["x", "y"]
    window = await store.read_all(since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2))
    assert [e.event_type for e in window] == ["b.v1"]
    streams = await store.read_streams(["x", "y", "none"])
    assert [len(streams[s]) for s in ("x", "y", "none")] == [2, 1, 0]


async def test_concurrent_appends_to_one_stream_let_exactly_one_win(store: EventStore) -> None:
    await store.append([AppendRequest("race", NO_STREAM, [ev()])])

    async def write() -> str:
        try:
            await store.append([AppendRequest("race", 1, [ev()])])
            return "won"
        except ConcurrencyError:
            return "lost"

    results = await asyncio.gather(*(write() for _ in range(8)))
    assert sorted(results) == ["lost"] * 7 + ["won"]
    assert [r.version for r in await store.read_stream("race")] == [1, 2]


async def test_a_reader_following_the_log_never_skips_an_event_under_concurrent_writers(
    pool: asyncpg.Pool,
) -> None:
    """Writers on separate connections commit in random order (each holds its transaction
    open a random while after appending); a reader polling by position must still see every
    event exactly once and in order."""
    writers, batches, per_batch = 6, 40, 5
    written: set[str] = set()
    done = asyncio.Event()

    async def writer(w: int) -> None:
        rng = random.Random(w)
        for b in range(batches):
            events = [ev(w=w, b=b) for _ in range(per_batch)]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_sleep($1)", rng.random() * 0.004)
                await append_on(conn, [AppendRequest(f"w{w}-{b % 4}", ANY_VERSION, events)])
                await conn.execute("SELECT pg_sleep($1)", rng.random() * 0.004)
            written.update(e.event_id for e in events)

    seen: list[tuple[int, str]] = []

    async def reader() -> None:
        store = PostgresEventStore(pool)
        last = 0
        while True:
            finished = done.is_set()
            batch = await store.read_all(after_position=last, limit=50)
            for e in batch:
                seen.append((e.global_position, e.event_id))
                last = e.global_position
            if finished and not batch:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await reading
    positions = [p for p, _ in seen]
    assert positions == list(range(1, writers * batches * per_batch + 1))
    assert len({i for _, i in seen}) == len(seen) == len(written)
    assert {i for _, i in seen} == written


async def test_stores_any_json_data_unchanged(store: EventStore) -> None:
    # Unicode, nesting, and integers beyond 64 bits (which the fast encoder refuses).
    data: dict[str, Any] = {"text": "cañón ☕ ü", "nested": {"list": [1, 2.5, None, True]}, "big": 2**70}
    event = ev(**data)
    await store.append([AppendRequest("s", NO_STREAM, [event])])
    (read,) = await store.read_stream("s")
    assert read.data == data


async def test_an_event_encoded_already_is_stored_as_its_json_says(store: EventStore) -> None:
    # The services' own events come encoded once (records.seal), mixed with plain ones.
    encoded = EncodedEvent(str(uuid.uuid4()), "thing.happened.v1", '{"n": 1, "text": "cañón"}', T0,
                           '{"correlationid": "c-9"}')  # fmt: skip
    recorded = await store.append([AppendRequest("s", NO_STREAM, [ev(n=0), encoded])])
    assert [r.data for r in recorded] == [{"n": 0}, {"n": 1, "text": "cañón"}]
    (_, read) = await store.read_stream("s")
    assert (read.event_id, read.version, read.occurred_at) == (encoded.event_id, 2, T0)
    assert read.data == {"n": 1, "text": "cañón"}
    assert read.correlation_id == "c-9"

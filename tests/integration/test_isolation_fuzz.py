"""The real handlers fed what a broken or hostile neighbour could publish, on real
PostgreSQL: random bytes, random JSON, and CloudEvents of every accepted type with data
near to valid (a field replaced by a random or extreme value) among good messages. Every
message is either handled or dead-lettered, never both and never neither; the handler
never raises; the good messages behind the bad ones are handled."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.clock import ManualClock
from services.common.contract import encode
from services.common.isolate import Quarantine, isolate
from services.common.records import InboundRecord
from services.common.settings import CommonSettings
from services.notifier import application as notifier_app
from services.notifier.domain.templates import load_templates
from services.notifier.settings import NotifierSettings
from services.recovery import application as recovery_app
from tests.e2e.test_notifier_resilience import decision_event
from tests.replay_world import T0, charge, complaint, make_service, refund

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: a failure here is never luck
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
_ids = itertools.count()  # unique ids and offsets across examples: the database is shared
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Values that reach past validation into the handler: amounts too large to quantize or
# store, ids too long to index, times at the ends of the calendar, text PostgreSQL refuses.
EXTREME = st.sampled_from([
    "1" * 30, "9" * 40 + ".99", "0.000000001", "-1", "1e400", "NaN", "Infinity", "", " ",
    "x" * 5000, "\x00", "a\u0000", "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59+00:00", "2026-02-30T00:00:00Z", 10**30, -(10**30), 1e308, [], {},
])  # fmt: skip


def _replaced(good: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(json.dumps(good))
    target = event["data"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return event


def _near(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``good`` (a CloudEvent) with one field of its data, or of a nested object, replaced."""
    data = good["data"]
    paths = [(k,) for k in data] + [(k, n) for k, v in data.items() if isinstance(v, dict) for n in v]
    return st.builds(lambda p, v: _replaced(good, p, v), st.sampled_from(paths), st.one_of(EXTREME, EXTREME, JSON))


# Values the contract accepts that the handling cannot take today: an amount too large to
# quantize, text PostgreSQL refuses in JSON, an id too long for an index.
HOSTILE = [
    (("claimed_amount",), "1" * 30),
    (("description",), "a\u0000b"),
    (("customer", "name"), "\u0000"),
    (("complaint_id",), "x" * 3000),
    (("charge_id",), "c" * 3000),
    (("refund_id",), "\u0000"),
]


def _hostile(good: dict[str, Any], draw: Callable[..., Any]) -> dict[str, Any]:
    fitting = [(p, v) for p, v in HOSTILE if p[0] in good["data"]]
    path, value = draw(st.sampled_from(fitting))
    return _replaced(good, path, value)


def _raw(kind: str, draw: Callable[..., Any], good: dict[str, Any]) -> bytes:
    if kind == "bytes":
        raw: bytes = draw(st.binary(max_size=64))
        return raw
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "random-data":
        return json.dumps({**good, "data": draw(st.dictionaries(st.text(max_size=12), JSON, max_size=6))}).encode()
    if kind == "hostile":
        return json.dumps(_hostile(good, draw)).encode()
    return json.dumps(draw(_near(good)), allow_nan=True).encode()


def _position() -> int:
    return next(_ids)


@st.composite
def recovery_batches(draw: Callable[..., Any]) -> tuple[list[InboundRecord], list[str]]:
    """Records (good charge-and-complaint pairs among bad ones) and the good complaints' ids."""
    records: list[InboundRecord] = []
    good: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        n = _position()
        cust, ch, cmp = f"fz-c{n}", f"fz-ch{n}", f"fz-cmp{n}"
        samples = [
            charge(cust, ch, "4.99", "purchase", "digital", T0),
            refund(cust, ch, "4.99", T0),
            complaint(cust, cmp, "damaged_item", T0, claimed_amount="20.00", currency="USD", order_id=f"o{n}"),
        ]
        kind = draw(st.sampled_from(["good", "good", "bytes", "json", "random-data", "near", "near", "hostile"]))
        if kind == "good":
            pair = [charge(cust, ch, "4.99", "purchase", "digital", T0),
                    complaint(cust, cmp, "delivery_failed", T0, charge_id=ch)]  # fmt: skip
            records += [_record(cust, json.dumps(e).encode()) for e in pair]
            good.append(cmp)
        else:
            records.append(_record(cust, _raw(kind, draw, draw(st.sampled_from(samples)))))
    return records, good


def _record(key: str, value: bytes) -> InboundRecord:
    return InboundRecord("fuzz", 0, _position(), key.encode(), value)


def _quarantine(pool: asyncpg.Pool, consumer: str, relay: str) -> Quarantine:
    return Quarantine(pool, consumer, relay, "dlq", "fuzz", ManualClock(T0), attempts=2, retry_base_s=0.001,
                      retry_max_s=0.002)  # fmt: skip


async def _assert_each_handled_or_dead_lettered(
    pool: asyncpg.Pool, records: list[InboundRecord], consumer: str, relay: str, skipped: Callable[[Any], bool]
) -> None:
    """Every record is in exactly one place: the dead letters, the inbox, or skipped by design."""
    letters = [json.loads(r[0]) for r in await pool.fetch("SELECT value FROM outbox WHERE relay = $1", relay)]
    dead: Counter[int] = Counter()  # the offsets dead-lettered as read
    dead_ids: set[str | None] = set()  # the events dead-lettered as decoded (no position)
    for letter in letters:
        if letter["type"] != "recovery.deadletter.v1":
            continue
        original = letter["data"]["original"]
        if original["offset"] is None:
            dead_ids.add(_event_id(original["value"].encode()))
        else:
            dead[original["offset"]] += 1
    ids = [_event_id(r.value) for r in records]
    claimed = {
        row[0]
        for row in await pool.fetch(
            "SELECT message_id FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
            consumer, [i for i in ids if i is not None],
        )
    }  # fmt: skip
    for record, event_id in zip(records, ids, strict=True):
        assert record.value is not None
        assert record.offset is not None
        assert dead[record.offset] <= 1, "dead-lettered once"
        lettered = dead[record.offset] == 1 or event_id in dead_ids
        handled = event_id in claimed or skipped(record.value)
        assert lettered != handled, (record.offset, record.value[:200], lettered, handled)


def _event_id(value: bytes | None) -> str | None:
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return None
    found = doc.get("id") if isinstance(doc, dict) else None
    return found if isinstance(found, str) else None


@FUZZ
@given(batch=recovery_batches())
async def test_the_recovery_handler_decides_or_dead_letters_every_message(
    pool: asyncpg.Pool, common_settings: CommonSettings, batch: tuple[list[InboundRecord], list[str]]
) -> None:
    records, good = batch
    service = make_service(pool, common_settings, ManualClock(T0 + timedelta(hours=1)))
    await pool.execute("DELETE FROM outbox")
    await isolate(records, service.handle_records, _quarantine(pool, recovery_app.CONSUMER, recovery_app.RELAY))
    decided = await pool.fetch(
        "SELECT data->>'complaint_id' AS c, count(*) AS n FROM events"
        " WHERE event_type = 'recovery.decision.made.v1' AND data->>'complaint_id' = ANY($1::text[]) GROUP BY 1",
        good,
    )
    assert {r["c"]: r["n"] for r in decided} == dict.fromkeys(good, 1), "every good complaint decided once"
    await _assert_each_handled_or_dead_lettered(pool, records, recovery_app.CONSUMER, recovery_app.RELAY,
                                                lambda _: False)  # fmt: skip


@st.composite
def notifier_batches(draw: Callable[..., Any]) -> tuple[list[InboundRecord], list[str]]:
    """Records (decisions among bad ones) and the good decisions' event ids."""
    records: list[InboundRecord] = []
    good: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        event = decision_event(_position()).model_copy(update={"time": datetime.now(UTC)})
        kind = draw(st.sampled_from(["good", "good", "bytes", "json", "random-data", "near", "hostile"]))
        if kind == "good":
            records.append(_record(str(event.subject), encode(event)))
            good.append(event.id)
        else:
            doc = json.loads(encode(event))
            records.append(_record(str(event.subject), _raw(kind, draw, doc)))
    return records, good


@settings(parent=FUZZ, max_examples=15)
@given(batch=notifier_batches())
async def test_the_notifier_handler_requests_or_dead_letters_every_message(
    pool: asyncpg.Pool, settings_env: dict[str, str], batch: tuple[list[InboundRecord], list[str]]
) -> None:
    records, good = batch
    settings = NotifierSettings(**{k.lower(): v for k, v in settings_env.items()})  # type: ignore[arg-type]
    service = notifier_app.NotifierService(pool, settings, load_templates(), ManualClock(T0))
    await pool.execute("DELETE FROM outbox")
    await isolate(records, service.handle_records, _quarantine(pool, notifier_app.CONSUMER, notifier_app.RELAY))
    requested = await pool.fetch("SELECT causation FROM notifications WHERE causation = ANY($1::text[])", good)
    assert sorted(r[0] for r in requested) == sorted(good), "every good decision gets its email request"
    await _assert_each_handled_or_dead_lettered(
        pool, records, notifier_app.CONSUMER, notifier_app.RELAY, lambda value: _skipped_by_notifier(value)
    )


def _skipped_by_notifier(value: bytes) -> bool:
    """A known type that needs no email, or a replay: neither claimed nor dead-lettered."""
    try:
        doc = json.loads(value)
    except ValueError:
        return False
    return isinstance(doc, dict) and (doc.get("type") in notifier_app.SKIPPED or doc.get("replay") is True)

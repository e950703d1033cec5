"""records.seal: a service's event encoded once, identical to the envelope model's encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.common.contract import encode
from services.common.contract.events import DeadLettered, DeadLetterError, OriginalMessage
from services.common.outbox import sealed_message
from services.common.records import envelope, seal, to_new_event

# Text that JSON must escape (quotes, backslash, control characters) and non-ASCII.
DATA = DeadLettered(
    original=OriginalMessage(topic="customer.complaints", partition=1, offset=7, key="k",
                             value='{"amount": "1.5\\u00e9"} ü 😀 \x01'),
    error=DeadLetterError(code="invalid_data", message='bad "amount" \\ \x1f', details=[{"loc": "a", "n": 1.5}]),
    received_at=datetime(2026, 11, 23, 16, 59, tzinfo=UTC),
)  # fmt: skip


@pytest.mark.parametrize(
    ("time", "subject", "correlation", "causation"),
    [
        (datetime(2026, 11, 23, 17, 0, 0, 123456, tzinfo=UTC), "cust-1", "c-1", "m-1"),
        (datetime(2026, 11, 23, 17, 0, tzinfo=UTC), None, None, None),  # no microseconds
        (datetime(2026, 11, 23, 17, 0, 5, 500, tzinfo=timezone(timedelta(hours=-5))), 'ü "q" \x1f', None, "m"),
    ],
)
def test_seal_gives_the_envelope_bytes_and_the_stored_row(
    time: datetime, subject: str | None, correlation: str | None, causation: str | None
) -> None:
    ids: dict[str, Any] = {"event_id": "e-1", "source": "recovery-service", "time": time, "subject": subject,
                           "correlation_id": correlation, "causation_id": causation}  # fmt: skip
    sealed, ev = seal(DATA, **ids), envelope(DATA, **ids)
    assert sealed.value == encode(ev)
    stored = to_new_event(ev)
    assert (sealed.stored.event_id, sealed.stored.event_type, sealed.stored.occurred_at) == (
        stored.event_id, stored.event_type, stored.occurred_at)  # fmt: skip
    assert sealed.stored.data == stored.data
    assert sealed.stored.metadata == stored.metadata
    assert sealed.key == (subject.encode() if subject else None)


def test_seal_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="time zone"):
        seal(DATA, event_id="e", source="s", time=datetime(2026, 1, 1), subject=None,
             correlation_id=None, causation_id=None)  # fmt: skip


def test_an_event_never_published_is_stored_alike_with_no_kafka_value() -> None:
    ids: dict[str, Any] = {"event_id": "e-1", "source": "recovery-service",
                           "time": datetime(2026, 11, 23, 17, 0, tzinfo=UTC), "subject": "cust-1",
                           "correlation_id": "c-1", "causation_id": "m-1"}  # fmt: skip
    kept, published = seal(DATA, **ids, published=False), seal(DATA, **ids)
    assert kept.value is None
    assert kept.stored == published.stored
    assert kept.key == published.key
    with pytest.raises(ValueError, match="never published"):
        sealed_message(kept, "recovery.decisions")
    assert sealed_message(published, "recovery.decisions").value == published.value


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("tracestate", [None, "congo=t61rcWkgMzE"])
def test_seal_carries_the_trace_context_into_the_value_the_row_and_the_outbox(tracestate: str | None) -> None:
    ids: dict[str, Any] = {"event_id": "e-1", "source": "recovery-service",
                           "time": datetime(2026, 11, 23, 17, 0, tzinfo=UTC), "subject": "cust-1",
                           "correlation_id": "c-1", "causation_id": "m-1", "traceparent": TRACEPARENT,
                           "tracestate": tracestate}  # fmt: skip
    sealed, ev = seal(DATA, **ids), envelope(DATA, **ids)
    assert sealed.value == encode(ev)
    assert sealed.stored.metadata == to_new_event(ev).metadata
    message = sealed_message(sealed, "recovery.decisions")
    assert (message.traceparent, message.tracestate) == (TRACEPARENT, tracestate)


def test_a_stored_event_keeps_its_trace_context_and_extensions_for_a_replay() -> None:
    from services.common.contract import decode
    from services.common.eventstore import RecordedEvent
    from services.common.records import to_cloudevent

    ev = envelope(DATA, event_id="e-1", source="billing", time=datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
                  subject="cust-1", correlation_id=None, causation_id=None, traceparent=TRACEPARENT)  # fmt: skip
    ev = decode(encode(ev).replace(b'"id"', b'"region":"eu","id"', 1)).envelope
    new = to_new_event(ev)
    recorded = RecordedEvent(global_position=1, stream_id="s", version=1, event_id=new.event_id,
                             event_type=new.event_type, data=new.data, metadata=new.metadata,
                             occurred_at=new.occurred_at, recorded_at=new.occurred_at)  # fmt: skip
    replayed = to_cloudevent(recorded, replay=True)
    assert replayed.traceparent == TRACEPARENT
    assert replayed.model_extra == {"region": "eu"}
    assert replayed.replay is True

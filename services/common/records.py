"""Stored events and CloudEvents: one lossless mapping both ways."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.common.contract import CloudEvent, EventData, new_event
from services.common.contract.ids import uuid5_str
from services.common.eventstore import NewEvent, RecordedEvent

_EVENT_NS = uuid.UUID("6c1f7a52-3d0e-4a4e-9a0b-6f2c7d1e5b90")


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A Kafka record as a consumer received it (adapter-neutral)."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None


def derived_event_id(causation_id: str, stream_id: str, index: int) -> str:
    """A deterministic id for the index-th event a message caused on a stream, so that two
    instances handling the same message produce the same ids (and the store keeps one)."""
    return uuid5_str(_EVENT_NS, f"{causation_id}\x1f{stream_id}\x1f{index}")


def to_new_event(event: CloudEvent) -> NewEvent:
    metadata = {
        k: v
        for k, v in (
            ("source", event.source),
            ("subject", event.subject),
            ("correlationid", event.correlationid),
            ("causationid", event.causationid),
        )
        if v is not None
    }
    return NewEvent(
        event_id=event.id,
        event_type=event.type,
        data=event.data,
        occurred_at=event.time,
        metadata=metadata,
    )


def to_cloudevent(recorded: RecordedEvent, *, replay: bool = False) -> CloudEvent:
    """The stored event as the envelope it was (or would have been) published in: the same
    id, type, time, subject, data and correlation; ``replay`` marks a re-publication."""
    meta = recorded.metadata
    return CloudEvent(
        id=recorded.event_id,
        source=str(meta.get("source", "recovery-service")),
        type=recorded.event_type,
        time=recorded.occurred_at,
        subject=meta.get("subject"),
        data=recorded.data,
        correlationid=meta.get("correlationid"),
        causationid=meta.get("causationid"),
        replay=True if replay else None,
    )


def typed(recorded: RecordedEvent, registry: Mapping[str, type[EventData]]) -> EventData | None:
    """The stored event's data as its model, or None for a type the registry does not know."""
    model = registry.get(recorded.event_type)
    return model.model_validate(recorded.data) if model is not None else None


def envelope(
    data: EventData,
    *,
    event_id: str,
    source: str,
    time: datetime,
    subject: str | None,
    correlation_id: str | None,
    causation_id: str | None,
) -> CloudEvent:
    """:func:`~services.common.contract.new_event` with the id required: the services derive
    every id they record (:func:`derived_event_id`), so a redelivery records nothing new."""
    return new_event(data, source=source, time=time, subject=subject, correlation_id=correlation_id,
                     causation_id=causation_id, event_id=event_id)  # fmt: skip

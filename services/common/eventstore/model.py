"""Event store values, errors and the port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic_core import from_json

NO_STREAM = 0
"""Expected version for a stream that must not exist yet (versions start at 1)."""
ANY_VERSION: None = None
"""Expected version that skips the concurrency check (append at the end)."""


class EventStoreError(Exception):
    """Base of the event store's errors."""


class ConcurrencyError(EventStoreError):
    """Another writer appended to the stream first; reload and decide again."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``event_id`` is the idempotency key across the whole store."""

    event_id: str
    event_type: str
    data: dict[str, Any]
    occurred_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ takes 4x as long (hot path)
class EncodedEvent:
    """A :class:`NewEvent` whose data and metadata are JSON text already: a service's own
    event, encoded once for both the store and the outbox. ``data`` and ``metadata`` decode
    on demand (the in-memory store, an append that returns what it recorded)."""

    event_id: str
    event_type: str
    data_json: str
    occurred_at: datetime
    metadata_json: str

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = from_json(self.data_json)
        return value

    @property
    def metadata(self) -> dict[str, Any]:
        value: dict[str, Any] = from_json(self.metadata_json)
        return value


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    global_position: int
    stream_id: str
    version: int
    event_id: str
    event_type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlationid")
        return str(value) if value is not None else None

    @property
    def causation_id(self) -> str | None:
        value = self.metadata.get("causationid")
        return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """Events for one stream; ``expected_version`` is NO_STREAM, a version, or ANY_VERSION."""

    stream_id: str
    expected_version: int | None
    events: Sequence[NewEvent | EncodedEvent]


class EventStore(Protocol):
    """The event store port.

    ``append`` is all-or-nothing across every request in the call. Events whose
    ``event_id`` is already stored are skipped (a no-op, not a second event); a request left
    with no new events does not check its expected version, so a retried append succeeds.
    """

    async def append(self, requests: Sequence[AppendRequest]) -> list[RecordedEvent]: ...

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]: ...

    async def read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]: ...

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]: ...

    async def head_position(self) -> int: ...

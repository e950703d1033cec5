"""The event store: streams of events with optimistic concurrency and a gapless global order.

Errors::

    EventStoreError
    └── ConcurrencyError   the stream is not at the version the writer expected

A port (:class:`EventStore`) with a PostgreSQL adapter and an in-memory twin; both pass the
same contract suite (tests/integration/test_event_store_contract.py).
"""

from services.common.eventstore.model import (
    ANY_VERSION,
    NO_STREAM,
    AppendRequest,
    ConcurrencyError,
    EncodedEvent,
    EventStore,
    EventStoreError,
    NewEvent,
    RecordedEvent,
)

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "AppendRequest",
    "ConcurrencyError",
    "EncodedEvent",
    "EventStore",
    "EventStoreError",
    "NewEvent",
    "RecordedEvent",
]

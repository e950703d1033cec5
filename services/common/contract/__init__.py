"""The wire contract (docs/contract.md) as code: the envelope, every event type, money."""

from services.common.contract.envelope import (
    CONTENT_TYPE,
    CloudEvent,
    ContractError,
    Event,
    decode,
    encode,
    new_event,
)
from services.common.contract.events import ALL_EVENT_TYPES, EVENT_TYPES, EventData

__all__ = [
    "ALL_EVENT_TYPES",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "CloudEvent",
    "ContractError",
    "Event",
    "EventData",
    "decode",
    "encode",
    "new_event",
]

"""The CloudEvents 1.0 envelope (structured JSON mode) and decoding of raw Kafka values.

Errors (one tree, each carries a dead-letter ``code``)::

    ContractError
    ├── code="too_large"       the value is over the size limit
    ├── code="not_json"        not UTF-8 JSON, or not a JSON object
    ├── code="not_cloudevent"  the envelope is not CloudEvents 1.0
    ├── code="unknown_type"    a ``type`` this consumer does not accept
    └── code="invalid_data"    ``data`` fails the event type's model
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.common.contract.construct import constructor
from services.common.contract.events import EVENT_TYPES, EventData

CONTENT_TYPE = "application/cloudevents+json"
MAX_EVENT_BYTES = 1_000_000

D = TypeVar("D", bound=EventData)


class CloudEvent(BaseModel):
    """One CloudEvents 1.0 event. ``data`` stays a plain dict; see :class:`Event`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=256)
    time: AwareDatetime
    subject: str | None = Field(default=None, description="the customer id")
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    correlationid: str | None = Field(default=None, description="the complaint that began it")
    causationid: str | None = Field(default=None, description="the event that caused this one")
    replay: bool | None = Field(
        default=None,
        description="set on events re-published from the store: consumers with side effects "
        "(emails, refunds) must not act on them again",
    )


class Event(BaseModel, Generic[D]):
    """A decoded event: its envelope and its typed data."""

    model_config = ConfigDict(frozen=True)

    envelope: CloudEvent
    data: D


class ContractError(Exception):
    """A message that cannot be accepted; ``code`` is the dead-letter error code."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Keep location and message, drop the input: it may hold personal data.
    return [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]


def decode(
    raw: bytes | str | None,
    accept: frozenset[str] | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event[EventData]:
    """Parse a raw Kafka value into a typed event, or raise :class:`ContractError`.

    ``accept`` limits the event types this consumer takes (others are ``unknown_type``).
    """
    if raw is None:
        raise ContractError("not_json", "empty message value")
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ContractError("too_large", f"message of {size} bytes is over {max_bytes}")
    try:
        # The common case in one pass of pydantic-core (parse and check together); anything
        # it refuses takes the slow path below, which says precisely what is wrong.
        envelope = CloudEvent.model_validate_json(raw)
    except ValidationError:
        pass
    else:
        if "specversion" not in envelope.model_fields_set:
            # The model defaults specversion for events we build; on the wire it is required.
            raise ContractError("not_cloudevent", "not a CloudEvents 1.0 event: specversion is missing")
        return _typed(envelope, accept)
    try:
        doc = json.loads(raw)
        # json.loads takes an escaped lone surrogate ("\\ud800"), which is no text: nothing
        # could encode it again (the store, the outbox). Refuse it here, not in the batch.
        json.dumps(doc, ensure_ascii=False).encode()
    except (UnicodeDecodeError, UnicodeEncodeError, json.JSONDecodeError) as exc:
        raise ContractError("not_json", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ContractError("not_json", "the value is JSON but not an object")
    if "specversion" not in doc:
        # The model defaults specversion for events we build; on the wire it is required.
        raise ContractError("not_cloudevent", "not a CloudEvents 1.0 event: specversion is missing")
    try:
        envelope = CloudEvent.model_validate(doc)
    except ValidationError as exc:
        raise ContractError("not_cloudevent", "not a CloudEvents 1.0 event", _errors(exc)) from None
    return _typed(envelope, accept)


def _typed(envelope: CloudEvent, accept: frozenset[str] | None) -> Event[EventData]:
    model = EVENT_TYPES.get(envelope.type)
    if model is None or (accept is not None and envelope.type not in accept):
        raise ContractError("unknown_type", f"event type {envelope.type!r} is not accepted here")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise ContractError("invalid_data", f"{envelope.type} data is invalid", _errors(exc)) from None
    return _new_typed_event(envelope=envelope, data=data)  # both validated just now


_new_cloudevent = constructor(CloudEvent)
_new_typed_event = constructor(Event[EventData])


def new_event(
    data: EventData,
    *,
    source: str,
    time: datetime,
    subject: str | None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """Wrap ``data`` in an envelope with a fresh UUID id (or the one given).

    Built without validating again: ``data`` is a model already, dumped to its JSON form,
    and the rest are the service's own values; only the time zone is checked here.
    """
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError("an event's time must carry a time zone")
    return _new_cloudevent(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=data.TYPE,
        time=time,
        subject=subject,
        data=data.model_dump(mode="json", exclude_none=True),
        correlationid=correlation_id,
        causationid=causation_id,
    )


def encode(event: CloudEvent) -> bytes:
    """The structured-mode JSON value of ``event``."""
    return event.model_dump_json(exclude_none=True).encode()

"""The CloudEvents 1.0 envelope (structured JSON mode) and decoding of raw Kafka values.

Errors (one tree, each carries a dead-letter ``code``)::

    ContractError
    ├── code="too_large"       the value is over the size limit
    ├── code="not_json"        the JSON parser refuses it (not UTF-8, malformed, a lone
    │                          surrogate, nested deeper than it goes, a number too long),
    │                          or it is JSON but not an object
    ├── code="not_cloudevent"  the envelope is not CloudEvents 1.0, or an attribute is
    │                          over its bound
    ├── code="unknown_type"    a ``type`` this consumer does not accept
    └── code="invalid_data"    ``data`` fails the event type's model or its bounds

:func:`decode` raises nothing else, whatever the bytes (a property test feeds it any).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.contract.construct import constructor
from services.common.contract.events import EVENT_TYPES, EventData
from services.common.contract.limits import (
    MAX_DATA_DEPTH,
    MAX_ERROR_DETAILS,
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SOURCE_LENGTH,
    MAX_TEXT_LENGTH,
)

CONTENT_TYPE = "application/cloudevents+json"

D = TypeVar("D", bound=EventData)


# W3C Trace Context: version-trace id-parent id-flags, lower-case hex (a later version may
# append fields after a dash). tracestate: at most 32 list members, 512 characters kept.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?", re.ASCII | re.DOTALL)
MAX_TRACESTATE_LENGTH = 512
# A CloudEvents extension attribute: a name of lower-case letters and digits (20 at most),
# a string, integer or boolean value. A publisher's are kept, up to this many.
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}", re.ASCII)
MAX_EXTENSIONS = 20


class CloudEvent(BaseModel):
    """One CloudEvents 1.0 event. ``data`` stays a plain dict; see :class:`Event`.

    Extension attributes the model does not name are kept (``model_extra``) when they are
    valid CloudEvents extensions (:func:`extensions_of`), and written out again by
    :func:`encode`; any other unknown attribute is dropped, as it always was.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    source: str = Field(min_length=1, max_length=MAX_SOURCE_LENGTH)
    type: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    time: AwareDatetime
    subject: str | None = Field(default=None, max_length=MAX_ID_LENGTH, description="the customer id")
    datacontenttype: str = Field(default="application/json", max_length=MAX_NAME_LENGTH)
    data: dict[str, Any]
    correlationid: str | None = Field(default=None, max_length=MAX_ID_LENGTH, description="the complaint that began it")
    causationid: str | None = Field(
        default=None, max_length=MAX_ID_LENGTH, description="the event that caused this one"
    )
    replay: bool | None = Field(
        default=None,
        description="set on events re-published from the store: consumers with side effects "
        "(emails, refunds) must not act on them again",
    )
    traceparent: str | None = Field(
        default=None,
        description="the distributed-tracing extension: the W3C trace context of the span that "
        "produced the event (one that is not a valid traceparent is dropped)",
        # Described, not enforced: an attribute over its bound is dropped, not refused.
        json_schema_extra={"maxLength": MAX_ID_LENGTH},
    )
    tracestate: str | None = Field(
        default=None,
        description="the distributed-tracing extension: the W3C vendor trace state (dropped when over "
        f"{MAX_TRACESTATE_LENGTH} characters)",
        json_schema_extra={"maxLength": MAX_TRACESTATE_LENGTH},
    )

    @field_validator("traceparent")
    @classmethod
    def _valid_traceparent(cls, value: str | None) -> str | None:
        # Dropped, not refused: an attribute unknown before is no reason to refuse an event.
        if value is None or len(value) > MAX_ID_LENGTH or "\x00" in value or not _TRACEPARENT.fullmatch(value):
            return None
        return value

    @field_validator("tracestate")
    @classmethod
    def _valid_tracestate(cls, value: str | None) -> str | None:
        return value if value is not None and len(value) <= MAX_TRACESTATE_LENGTH and "\x00" not in value else None

    @model_validator(mode="after")
    def _valid_extensions(self) -> CloudEvent:
        extra = self.__pydantic_extra__
        if extra:
            kept = _extensions(extra)
            if len(kept) != len(extra):
                extra.clear()
                extra.update(kept)
        return self


def _extensions(extra: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in extra.items():
        if len(kept) == MAX_EXTENSIONS or not _EXTENSION_NAME.fullmatch(name):
            continue
        if type(value) is str:
            if len(value) <= MAX_ID_LENGTH and "\x00" not in value:
                kept[name] = value
        elif type(value) is bool or (type(value) is int and -(2**31) <= value < 2**31):
            kept[name] = value
    return kept


def extensions_of(event: CloudEvent) -> dict[str, Any]:
    """The publisher's extension attributes on ``event`` that the model does not name."""
    return dict(event.__pydantic_extra__ or {})


class Event(BaseModel, Generic[D]):
    """A decoded event: its envelope and its typed data."""

    model_config = ConfigDict(frozen=True)

    envelope: CloudEvent
    data: D


class ContractError(Exception):
    """A message that cannot be accepted; ``code`` is the dead-letter error code.

    ``message`` and ``details`` are cut to the dead letter's bounds (``MAX_TEXT_LENGTH``
    characters, ``MAX_ERROR_DETAILS`` entries), so a dead letter can always be built.
    """

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        message = message[:MAX_TEXT_LENGTH]
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = (details or [])[:MAX_ERROR_DETAILS]


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Keep location and message, drop the input: it may hold personal data.
    return [
        {"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _invalid(code: str, what: str, details: list[dict[str, Any]]) -> ContractError:
    """``what`` is invalid, naming the fields (the first few) in the message itself."""
    named = "; ".join(f"{d['loc'] or '(value)'}: {d['msg']}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return ContractError(code, f"{what}: {named}{more}", details)


def decode(
    raw: bytes | str | None,
    accept: frozenset[str] | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event[EventData]:
    """Parse a raw Kafka value into a typed event, or raise :class:`ContractError`.

    ``accept`` limits the event types this consumer takes (others are ``unknown_type``).
    One parse, by pydantic-core, which checks the envelope as it goes; a failure is told
    apart from the ValidationError itself, never by parsing again.
    """
    if raw is None:
        raise ContractError("not_json", "empty message value")
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError:  # a lone surrogate in a str: no UTF-8 for it
            raise ContractError("not_json", "not UTF-8 JSON: the text holds a lone surrogate") from None
    if len(raw) > max_bytes:
        raise ContractError("too_large", f"message of {len(raw)} bytes is over {max_bytes}")
    try:
        envelope = CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise _refusal(exc) from None
    if "specversion" not in envelope.model_fields_set:
        # The model defaults specversion for events we build; on the wire it is required.
        raise ContractError("not_cloudevent", "not a CloudEvents 1.0 event: specversion is missing")
    model = EVENT_TYPES.get(envelope.type)
    if model is None or (accept is not None and envelope.type not in accept):
        raise ContractError("unknown_type", f"event type {envelope.type!r} is not accepted here")
    # The walk over the parsed value runs only if the bytes hold more openers ({ or [, in
    # strings too) than the envelope and the deepest data allowed take, or an escaped
    # U+0000. A typical event has three openers, no [ and no backslash, and this costs it
    # about 3 % of its decoding (`int in bytes` is a memchr; the count is a plain loop).
    openers = raw.count(b"{") + (raw.count(b"[") if _LEFT_BRACKET in raw else 0)
    if openers > MAX_DATA_DEPTH + 1 or (_BACKSLASH in raw and b"\\u0000" in raw):
        _check_values(envelope)
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise _invalid("invalid_data", f"{envelope.type} data is invalid", _errors(exc)) from None
    return _new_typed_event(envelope=envelope, data=data)  # both validated just now


def _refusal(exc: ValidationError) -> ContractError:
    """The contract's error for what pydantic-core refused in parsing the envelope."""
    first = exc.errors(include_url=False, include_input=False)[0]
    if first["type"] == "json_invalid":
        # The parser's own words with the position: "EOF while parsing", "lone leading
        # surrogate in hex escape" (no text: nothing could encode it again, the store or the
        # outbox), "recursion limit exceeded" (it nests 200 levels at most, so no deeper
        # document reaches any code here), "number out of range" (over 4,300 digits).
        reason = first.get("ctx", {}).get("error", first["msg"])
        return ContractError("not_json", f"the JSON parser refuses the value: {reason}")
    if first["type"] == "model_type" and not first["loc"]:
        return ContractError("not_json", "the value is JSON but not an object")
    return _invalid("not_cloudevent", "not a CloudEvents 1.0 event", _errors(exc))


_LEFT_BRACKET, _BACKSLASH = ord("["), ord("\\")


def _check_values(envelope: CloudEvent) -> None:
    """Refuse ``data`` nested deeper than ``MAX_DATA_DEPTH``, and U+0000 in an attribute or
    anywhere in ``data``: PostgreSQL text and jsonb cannot hold it, and a value the store
    refuses would fail its whole batch again on every redelivery."""
    for name in ("id", "source", "subject", "datacontenttype", "correlationid", "causationid"):
        if "\x00" in (getattr(envelope, name) or ""):
            raise _invalid("not_cloudevent", "not a CloudEvents 1.0 event", [_nul(name)])
    invalid = f"{envelope.type} data is invalid"
    # Without recursion: the stack holds (container, its depth, its location in data).
    stack: list[tuple[Any, int, str]] = [(envelope.data, 1, "")]
    while stack:
        value, depth, loc = stack.pop()
        if depth > MAX_DATA_DEPTH:
            raise _invalid("invalid_data", invalid, [{"loc": loc, "msg": f"nested over {MAX_DATA_DEPTH} levels"}])
        for key, item in value.items() if type(value) is dict else enumerate(value):
            where = f"{loc}.{_part(key)}" if loc else _part(key)
            if (type(key) is str and "\x00" in key) or (type(item) is str and "\x00" in item):
                raise _invalid("invalid_data", invalid, [_nul(where)])
            if type(item) is dict or type(item) is list:
                stack.append((item, depth + 1, where))


def _nul(loc: str) -> dict[str, Any]:
    return {"loc": loc, "msg": "holds U+0000, which cannot be stored"}


def _part(key: object) -> str:
    # A key of the sender's own, shown short and without the U+0000 it may hold itself.
    text = str(key).replace("\x00", "\\u0000")
    return text if len(text) <= 64 else text[:61] + "..."


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
    traceparent: str | None = None,
    tracestate: str | None = None,
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
        traceparent=traceparent,
        tracestate=tracestate,
    )


def encode(event: CloudEvent) -> bytes:
    """The structured-mode JSON value of ``event``."""
    return event.model_dump_json(exclude_none=True).encode()

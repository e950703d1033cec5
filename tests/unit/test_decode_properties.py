"""Whatever the bytes, :func:`decode` returns an event within every bound or raises a
:class:`ContractError` with a known code that fits a dead letter: never anything else."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from services.common.contract import ContractError, Event, EventData, decode, encode
from services.common.contract.limits import MAX_DATA_DEPTH, MAX_ERROR_DETAILS, MAX_TEXT_LENGTH
from services.common.contract.limits_doc import Limit, limits, resolve
from services.common.contract.money import AMOUNT_PATTERN, MAX_AMOUNT_DIGITS, quantize
from services.common.kafka import dead_letter

from .contract_samples import SAMPLES, T
from .schema_conformance import PUBLISHED, conformance_errors

CODES = {"too_large", "not_json", "not_cloudevent", "unknown_type", "invalid_data"}
NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
# No example database: the run leaves nothing in the working tree.
PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def outcome(raw: bytes | str) -> Event[EventData] | ContractError:
    """Decode ``raw``, and check what came of it; anything but ContractError propagates."""
    try:
        event = decode(raw)
    except ContractError as exc:
        _fits_a_dead_letter(exc, raw)
        return exc
    assert encode(event.envelope)  # what was taken can be written again
    _within_bounds(event.envelope.data)
    _amounts_within_bounds(event.data)
    # ...and is what the published schema of its type describes.
    published = PUBLISHED[event.envelope.type]
    typed = {**event.envelope.model_dump(mode="json", exclude_none=True),
             "data": event.data.model_dump(mode="json", exclude_none=True)}  # fmt: skip
    assert conformance_errors(typed, published, published) == []
    return event


def _fits_a_dead_letter(error: ContractError, raw: bytes | str) -> None:
    assert error.code in CODES, error.code
    assert len(error.message) <= MAX_TEXT_LENGTH
    assert len(error.details) <= MAX_ERROR_DETAILS
    value = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    letter = dead_letter(error, topic="customer.complaints", partition=0, offset=7, key=b"cust-1",
                         value=value, source="tests", now=NOW)  # fmt: skip
    assert encode(letter)  # it can be published


def _within_bounds(data: dict[str, Any]) -> None:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        assert depth <= MAX_DATA_DEPTH
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            assert "\x00" not in str(key)
            assert "\x00" not in (item if isinstance(item, str) else "")
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))


def _amounts_within_bounds(model: BaseModel) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Decimal):
            # Rounding an accepted amount (what the rules do) keeps it, and never raises.
            assert value.adjusted() < MAX_AMOUNT_DIGITS
            assert quantize(value, model.currency) == value  # type: ignore[attr-defined]
        for part in value if isinstance(value, list | tuple) else [value]:
            if isinstance(part, BaseModel):
                _amounts_within_bounds(part)


# --------------------------------------------------------------------------- strategies

# Every character, lone surrogates included, and those the decoder looks for more often.
CHARS = st.characters(exclude_categories=()) | st.characters(categories=["Cs"]) | st.sampled_from("\x00\\{[")
TEXT = st.text(CHARS, max_size=20)
LONG = st.sampled_from([35, 36, 200, 201, 256, 257, 2000, 2001, 10_001]).map(lambda n: "x" * n)
NUMBERS = (
    st.integers()
    | st.integers(-(10**1000), 10**1000)  # longer ones are written into the bytes: see below
    | st.floats(allow_nan=True, allow_infinity=True)
)
# Amounts of integer digits and decimals at, around and far past the bounds (15 and 4).
AMOUNTS = st.builds(
    lambda whole, decimals: "7" * whole + ("." + "5" * decimals if decimals else ""),
    st.sampled_from([1, 2, 14, 15, 16, 27, 40]),
    st.sampled_from([0, 0, 1, 2, 3, 4, 5, 8]),
)
SCALARS = st.none() | st.booleans() | NUMBERS | AMOUNTS | TEXT | LONG
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=30)  # fmt: skip


@dataclass(frozen=True)
class Deep:
    """Objects and arrays nested ``depth`` levels around a leaf, written by :func:`serialise`
    without recursion (json.dumps stops at Python's recursion limit)."""

    depth: int
    openers: tuple[bool, ...]  # per level: an array (True) or an object

    def json(self) -> bytes:
        head = b"".join(b"[" if arr else b'{"a":' for arr in self.openers)
        return head + b"0" + b"".join(b"]" if arr else b"}" for arr in reversed(self.openers))


@st.composite
def deep(draw: st.DrawFn) -> Deep:
    """Nesting around the bound on data, around the parser's own limit, and far past it."""
    depth = draw(st.sampled_from([MAX_DATA_DEPTH - 2, MAX_DATA_DEPTH - 1, MAX_DATA_DEPTH, 199, 200, 201, 100_000]))
    pattern = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    return Deep(depth, tuple(pattern[i % len(pattern)] for i in range(depth)))


def serialise(doc: Any, ascii_only: bool) -> bytes:
    # ensure_ascii writes a lone surrogate as an escape ("\ud800"), the other way as the
    # bytes UTF-8 has no place for: both must be refused.
    deeps: list[Deep] = []

    def token(value: Any) -> Any:  # a placeholder for each Deep; the rest is shallow
        if isinstance(value, Deep):
            deeps.append(value)
            return f"@@deep{len(deeps) - 1}@@"
        if isinstance(value, dict):
            return {k: token(v) for k, v in value.items()}
        return [token(v) for v in value] if isinstance(value, list) else value

    raw = json.dumps(token(doc), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    for i, value in enumerate(deeps):
        raw = raw.replace(f'"@@deep{i}@@"'.encode(), value.json())
    return raw


FIELDS = {event_type: limits(resolve(s["properties"]["data"], s), s) for event_type, s in PUBLISHED.items()}


def near_its_bound(lim: Limit, now: Any = None) -> st.SearchStrategy[Any]:
    """Values at and around the field's own bound (a list: of copies of its first item)."""
    if lim.schema.get("pattern") == AMOUNT_PATTERN:
        return AMOUNTS
    if "maxLength" in lim.schema:
        return st.integers(-1, 1).map(lambda d: "x" * (lim.schema["maxLength"] + d))
    if "maxItems" in lim.schema:
        return st.integers(0, lim.schema["maxItems"] + 1).map(lambda n: (now or [None])[:1] * n)
    return JSON


ATTRIBUTES = ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data",
              "correlationid", "causationid", "replay"]  # fmt: skip


def _keys(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    return None


def _get(doc: Any, path: str) -> Any:
    for key in _keys(path):
        doc = _child(doc, key)
    return doc


def _set(doc: dict[str, Any], path: str, value: Any, delete: bool) -> None:
    """Set (or remove) what ``path`` names, if earlier changes left it there to reach."""
    *parents, last = _keys(path)
    node: Any = _get(doc, ".".join(map(str, parents))) if parents else doc  # a dict or a list
    if _child(node, last) is None and not (isinstance(node, dict) and isinstance(last, str)):
        return  # no such item: the list is shorter, or what held it is something else now
    if delete and isinstance(node, dict):
        node.pop(last, None)
    elif delete:
        del node[last]
    else:
        node[last] = value


@st.composite
def cloudevents(draw: st.DrawFn) -> bytes:
    """A valid event of any type, then a few fields of its data or its envelope replaced by
    anything, removed, or joined by unknown ones."""
    event_type = draw(st.sampled_from(sorted(FIELDS)))
    data = copy.deepcopy(SAMPLES[event_type])
    doc: dict[str, Any] = {"specversion": "1.0", "id": "evt-1", "source": "tests", "type": event_type,
                           "time": T, "subject": "cust-1", "data": data}  # fmt: skip
    for _ in range(draw(st.integers(0, 4))):
        value = draw(JSON | deep())
        where = draw(st.sampled_from(["data", "data", "envelope", "unknown"]))
        if where == "data":
            lim = draw(st.sampled_from(FIELDS[event_type]))
            value = draw(near_its_bound(lim) | st.just(value))
            _set(data, lim.path.replace("[]", ".0"), value, delete=draw(st.integers(0, 4)) == 0)
        elif where == "envelope":
            _set(doc, draw(st.sampled_from(ATTRIBUTES)), value, delete=draw(st.booleans()))
        else:
            data[draw(TEXT)] = value
    return serialise(doc, draw(st.booleans()))


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(st.binary(max_size=2048))
def test_any_bytes(raw: bytes) -> None:
    outcome(raw)


@PROPERTY
@given(st.text(CHARS, max_size=200))
def test_any_text(raw: str) -> None:
    outcome(raw)


@PROPERTY
@given(JSON | deep() | st.dictionaries(st.sampled_from(ATTRIBUTES), JSON | deep()), st.booleans())
def test_any_json(doc: Any, ascii_only: bool) -> None:
    outcome(serialise(doc, ascii_only))


@settings(PROPERTY, max_examples=1000)
@given(cloudevents())
def test_cloudevents_of_every_type_with_any_data(raw: bytes) -> None:
    outcome(raw)


@st.composite
def one_field_near_its_bound(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid event with one field of its data at, just under or just past its bound."""
    event_type = draw(st.sampled_from(sorted(FIELDS)))
    lim = draw(st.sampled_from([lim for lim in FIELDS[event_type] if {"maxLength", "maxItems"} & lim.schema.keys()]))
    data = copy.deepcopy(SAMPLES[event_type])
    path = lim.path.replace("[]", ".0")
    _set(data, path, draw(near_its_bound(lim, _get(data, path))), delete=False)
    doc = {"specversion": "1.0", "id": "e", "source": "s", "type": event_type, "time": T, "data": data}
    return path, serialise(doc, draw(st.booleans()))


@settings(PROPERTY, max_examples=600)
@given(one_field_near_its_bound())
def test_one_field_near_its_bound_is_taken_within_it_and_named_past_it(case: tuple[str, bytes]) -> None:
    path, raw = case
    result = outcome(raw)  # if taken, it is within the published schema, which has the bound
    if isinstance(result, ContractError):
        assert result.code == "invalid_data"
        (detail,) = result.details
        # The field; or, for decimals beyond the currency's (checked with the currency, by
        # the object holding both), that object, with the field named in the message.
        parent, _, name = path.rpartition(".")
        assert detail["loc"] == path or (detail["loc"] == parent and detail["msg"].startswith(f"Value error, {name} "))


@PROPERTY
@given(cloudevents(), st.integers(4000, 6000), st.sampled_from([b"", b"-", b"0.", b"1e"]), st.data())
def test_numbers_of_thousands_of_digits_anywhere(raw: bytes, digits: int, lead: bytes, data: st.DataObject) -> None:
    # Written into the bytes: Python itself would not turn such an int into text.
    at = data.draw(st.sampled_from([i for i, c in enumerate(raw) if c in b":,["] or [0]))
    outcome(raw[: at + 1] + lead + b"7" * digits + b"," + raw[at + 1 :])


def test_the_samples_themselves_are_taken() -> None:
    # The mutations start from valid events: each type's sample decodes as it stands.
    for event_type in FIELDS:
        assert isinstance(outcome(serialise({"specversion": "1.0", "id": "e", "source": "s", "type": event_type,
                                             "time": T, "data": SAMPLES[event_type]}, True)), Event)  # fmt: skip

"""Every bound the contract publishes holds at its limit and refuses one past it, naming the
field; the bounds are read from the models' own schemas, so a new field is tried too."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.contract import CloudEvent, ContractError, decode
from services.common.contract.events import ChargePosted
from services.common.contract.limits import MAX_DATA_DEPTH, MAX_ERROR_DETAILS, MAX_TEXT_LENGTH
from services.common.contract.limits_doc import Limit, limits, resolve
from services.common.contract.money import AMOUNT_PATTERN, MAX_AMOUNT_DIGITS, minor_units, quantize

from .contract_samples import SAMPLES, T
from .schema_conformance import PUBLISHED

ENVELOPE = {"specversion": "1.0", "id": "evt-1", "source": "billing/eu-west", "time": T, "subject": "cust-0042",
            "datacontenttype": "application/json", "correlationid": "cmp-1", "causationid": "evt-0"}  # fmt: skip


def wire(event_type: str, data: dict[str, Any] | None = None, **envelope: Any) -> bytes:
    doc = {**ENVELOPE, "type": event_type, "data": SAMPLES[event_type] if data is None else data, **envelope}
    return json.dumps(doc).encode()


def refusal(raw: bytes) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode(raw)
    return info.value


def loc(path: str) -> str:
    """The ``loc`` a detail gives for ``path``: list items by position (the first here)."""
    return path.replace("[]", ".0")


def put(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in loc(path).split(".")]
    node: Any = doc
    for part in parents:
        node = node[part]
    node[last] = value
    return doc


def get(doc: Any, path: str) -> Any:
    for part in loc(path).split("."):
        doc = doc[int(part)] if part.isdigit() else doc[part]
    return doc


def text_of(length: int, lim: Limit, current: str) -> str:
    """A string of ``length`` characters that matches the field's pattern, if it has one, so
    that only the length decides."""
    pattern = lim.schema.get("pattern")
    if pattern is None:
        return "x" * length
    if lim.schema.get("format") == "email":
        return "a" * (length - len("@example.com")) + "@example.com"
    if pattern == r"^[0-9a-f]{64}$":  # a SHA-256 in hex: one past it breaks the pattern too
        return "a" * length
    if pattern == r"^(policy|agent:.+)$":
        return "agent:" + "x" * (length - len("agent:"))
    if pattern == r"^[A-Z]{3}$":  # a currency: the sample's own at the limit (its amount fits it)
        return current if length == len(current) else current + "X" * (length - len(current))
    if pattern.startswith("^[A-Za-z]{2,3}"):  # a locale: a language and subtags of 2 to 8
        language = "abc" if (length - 3) % 9 not in (1, 2) else "ab"
        rest, subtags = length - len(language), []
        while rest:
            size = min(9, rest) if rest - min(9, rest) not in (1, 2) else 6
            subtags.append("-" + "x" * (size - 1))
            rest -= size
        return language + "".join(subtags)
    raise AssertionError(f"no text for the pattern {pattern!r}: teach text_of() the new field")


def data_fields() -> Iterator[tuple[str, Limit]]:
    # From the published schemas: a bound the code dropped is still tried, and fails.
    for event_type, schema in PUBLISHED.items():
        for lim in limits(resolve(schema["properties"]["data"], schema), schema):
            yield event_type, lim


AMOUNTS = [(t, lim) for t, lim in data_fields() if lim.schema.get("pattern") == AMOUNT_PATTERN]
FIELDS = [
    (t, lim) for t, lim in data_fields() if {"maxLength", "maxItems"} & lim.schema.keys() and (t, lim) not in AMOUNTS
]


# --------------------------------------------------------------------------- strings and lists


@pytest.mark.parametrize(("event_type", "lim"), FIELDS, ids=[f"{t}:{lim.path}" for t, lim in FIELDS])
def test_each_data_field_takes_its_limit_and_refuses_one_more_naming_the_field(event_type: str, lim: Limit) -> None:
    sample = SAMPLES[event_type]
    if "maxItems" in lim.schema:
        items = get(sample, lim.path)
        at, over = (items[:1] * n for n in (lim.schema["maxItems"], lim.schema["maxItems"] + 1))
    else:
        at, over = (
            text_of(n, lim, get(sample, lim.path)) for n in (lim.schema["maxLength"], lim.schema["maxLength"] + 1)
        )
    event = decode(wire(event_type, put(sample, lim.path, at)))
    assert get(event.data.model_dump(mode="json"), lim.path) == at  # whole, not cut
    error = refusal(wire(event_type, put(sample, lim.path, over)))
    assert error.code == "invalid_data"
    assert [d["loc"] for d in error.details] == [loc(lim.path)]
    assert loc(lim.path) in error.message


BOUNDED = [lim for lim in limits(CloudEvent.model_json_schema()) if "maxLength" in lim.schema]
# The trace context is dropped over its bound, not refused: tracing is no reason to refuse an event.
DROPPED = {"traceparent", "tracestate"}
ATTRIBUTES = [lim for lim in BOUNDED if lim.path not in DROPPED]


def test_every_bounded_envelope_attribute_is_tried() -> None:
    names = {lim.path for lim in BOUNDED}
    assert names == {"id", "source", "type", "subject", "datacontenttype", "correlationid", "causationid", *DROPPED}


@pytest.mark.parametrize("lim", [lim for lim in BOUNDED if lim.path in DROPPED], ids=sorted(DROPPED))
def test_the_trace_context_takes_its_limit_and_drops_one_more(lim: Limit) -> None:
    # A valid traceparent may carry more after its four fields (a later version's).
    start = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-"
    at = (start + "x" * lim.schema["maxLength"])[: lim.schema["maxLength"]]
    assert getattr(decode(wire("billing.charge.posted.v1", **{lim.path: at})).envelope, lim.path) == at
    assert getattr(decode(wire("billing.charge.posted.v1", **{lim.path: at + "x"})).envelope, lim.path) is None


@pytest.mark.parametrize("lim", ATTRIBUTES, ids=[lim.path for lim in ATTRIBUTES])
def test_each_envelope_attribute_takes_its_limit_and_refuses_one_more(lim: Limit) -> None:
    at, over = "x" * lim.schema["maxLength"], "x" * (lim.schema["maxLength"] + 1)
    raw = wire("billing.charge.posted.v1", **{lim.path: at})
    if lim.path == "type":
        assert refusal(raw).code == "unknown_type"  # past the envelope: no type is that long
    else:
        assert getattr(decode(raw).envelope, lim.path) == at
    error = refusal(wire("billing.charge.posted.v1", **{lim.path: over}))
    assert error.code == "not_cloudevent"
    assert [d["loc"] for d in error.details] == [lim.path]
    assert lim.path in error.message


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(("event_type", "lim"), AMOUNTS, ids=[f"{t}:{lim.path}" for t, lim in AMOUNTS])
def test_each_amount_takes_its_most_digits_and_refuses_one_more(event_type: str, lim: Limit) -> None:
    sample = SAMPLES[event_type]
    currency = get(sample, lim.path.rsplit(".", 1)[0] + ".currency" if "." in lim.path else "currency")
    places = minor_units(currency)
    largest = "9" * MAX_AMOUNT_DIGITS + ("." + "9" * places if places else "")
    event = decode(wire(event_type, put(sample, lim.path, largest)))
    assert get(event.data.model_dump(mode="json"), lim.path) == largest
    for over in ("1" + "0" * MAX_AMOUNT_DIGITS, "0" * (MAX_AMOUNT_DIGITS + 1)):  # leading zeros count
        error = refusal(wire(event_type, put(sample, lim.path, over)))
        assert error.code == "invalid_data"
        assert [d["loc"] for d in error.details] == [loc(lim.path)]
        assert f"at most {MAX_AMOUNT_DIGITS} integer digits" in error.message


def test_a_27_digit_amount_is_invalid_data_not_a_crash_in_the_rules() -> None:
    # 27 integer digits and two decimals: past Decimal's 28 digits, where quantize() raised.
    data = {**SAMPLES["billing.charge.posted.v1"], "amount": "9" * 27 + ".99", "currency": "USD"}
    error = refusal(wire("billing.charge.posted.v1", data))
    assert error.code == "invalid_data"
    assert error.details == [{"loc": "amount", "msg": "Value error, an amount has at most 15 integer digits, not 27"}]
    as_number = json.dumps({**ENVELOPE, "type": "billing.charge.posted.v1", "data": data}).replace(
        '"' + "9" * 27 + '.99"', "9" * 27
    )  # a JSON integer is an amount too, and bounded alike
    assert refusal(as_number.encode()).code == "invalid_data"


@pytest.mark.parametrize("amount", ["4.99999", "0.00001", "1." + "0" * 30])
def test_an_amount_with_more_than_four_decimals_is_refused_whatever_the_currency(amount: str) -> None:
    with pytest.raises(ValidationError, match="at most 4 decimals"):
        ChargePosted.model_validate({**SAMPLES["billing.charge.posted.v1"], "amount": amount, "currency": "CLF"})


@pytest.mark.parametrize("amount", ["\u0663.\u0665\u0660", "\uff13", ".5", "5.", "+5", " ", "1_000"])
def test_an_amount_is_ascii_digits_as_the_schema_says(amount: str) -> None:
    assert not re.fullmatch(AMOUNT_PATTERN, amount)
    with pytest.raises(ValidationError, match="not a decimal amount"):
        ChargePosted.model_validate({**SAMPLES["billing.charge.posted.v1"], "amount": amount})


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD", "CLF"])
@pytest.mark.parametrize("factor", ["1", "0.5", "0.333333333333333333333333333", "100", "1.0000001"])
def test_quantize_never_raises_for_the_largest_amount_times_any_factor_the_policy_uses(
    currency: str, factor: str
) -> None:
    places = minor_units(currency)
    largest = Decimal("9" * MAX_AMOUNT_DIGITS + ("." + "9" * places if places else ""))
    assert quantize(largest, currency) == largest
    assert quantize(largest * Decimal(factor), currency).as_tuple().exponent == -places


def test_quantize_rounds_half_even_in_its_own_context_whatever_the_thread_says() -> None:
    with localcontext(prec=5, rounding=ROUND_DOWN):
        assert quantize(Decimal("2.675"), "USD") == Decimal("2.68")
        assert quantize(Decimal("2.665"), "USD") == Decimal("2.66")
        assert quantize(Decimal("123456789.125"), "USD") == Decimal("123456789.12")


# --------------------------------------------------------------------------- depth and U+0000


def nested(depth: int) -> Any:
    """A value that is ``depth`` levels of objects and arrays deep (1: an empty object)."""
    value: Any = {}
    for level in range(depth - 1):
        value = [value] if level % 2 else {"a": value}
    return value


def test_data_nested_to_the_limit_is_taken_and_one_level_more_is_invalid_data() -> None:
    # A type whose data holds no object of its own: the only openers are the envelope's,
    # data's and the extra field's. data is level 1; the extra field holds the others.
    sample = SAMPLES["recovery.sla.warning.v1"]
    event = decode(wire("recovery.sla.warning.v1", {**sample, "extra": nested(MAX_DATA_DEPTH - 1)}))
    assert "extra" in event.envelope.data
    error = refusal(wire("recovery.sla.warning.v1", {**sample, "extra": nested(MAX_DATA_DEPTH)}))
    assert error.code == "invalid_data"
    assert error.details[0]["loc"].startswith("extra.a.0.a")
    assert f"nested over {MAX_DATA_DEPTH} levels" in error.message


def test_deep_data_is_refused_in_a_list_too_and_whatever_its_type() -> None:
    sample = SAMPLES["recovery.deadletter.v1"]
    deep = put(sample, "error.details[]", {"loc": "x", "msg": "y", "more": nested(MAX_DATA_DEPTH)})
    assert refusal(wire("recovery.deadletter.v1", deep)).code == "invalid_data"


def test_a_100000_deep_document_is_not_json_without_a_recursion_error() -> None:
    for raw in (
        b"[" * 100_000 + b"]" * 100_000,
        wire("complaint.filed.v1").replace(
            b'"description": ', b'"deep": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b', "description": '
        ),
    ):
        error = refusal(raw)
        assert error.code == "not_json"
        assert "recursion limit exceeded" in error.message


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 4301])
def test_a_number_too_long_to_read_is_not_json(number: str) -> None:
    raw = wire("complaint.filed.v1").replace(b'"description": ', b'"extra": ' + number.encode() + b', "description": ')
    error = refusal(raw)
    assert error.code == "not_json"
    assert "number out of range" in error.message


@pytest.mark.parametrize("path", ["charge_id", "customer.name", "description"])
def test_u0000_in_data_is_invalid_data_naming_the_field(path: str) -> None:
    sample = SAMPLES["complaint.filed.v1"]
    error = refusal(wire("complaint.filed.v1", put(sample, path, "a\x00b")))
    assert error.code == "invalid_data"
    assert error.details == [{"loc": path, "msg": "holds U+0000, which cannot be stored"}]


def test_u0000_in_an_unknown_field_or_key_of_data_is_refused_too() -> None:
    sample = SAMPLES["complaint.filed.v1"]
    assert refusal(wire("complaint.filed.v1", {**sample, "extra": ["ok", "a\x00"]})).details[0]["loc"] == "extra.1"
    error = refusal(wire("complaint.filed.v1", {**sample, "k\x00": 1}))
    assert error.code == "invalid_data"
    assert error.details[0]["loc"] == "k\\u0000"  # named, without the character itself
    long_key = {**sample, "k" * 1000: {"x": "\x00"}}
    assert refusal(wire("complaint.filed.v1", long_key)).details[0]["loc"] == "k" * 61 + "....x"


@pytest.mark.parametrize("attribute", ["id", "source", "subject", "correlationid", "causationid"])
def test_u0000_in_an_envelope_attribute_is_not_a_cloudevent(attribute: str) -> None:
    held: dict[str, Any] = {attribute: "a\x00b"}
    error = refusal(wire("complaint.filed.v1", **held))
    assert error.code == "not_cloudevent"
    assert error.details == [{"loc": attribute, "msg": "holds U+0000, which cannot be stored"}]


def test_an_escaped_backslash_before_u0000_is_not_u0000() -> None:
    # The bytes hold \u0000, but as text: a backslash, then "u0000".
    sample = SAMPLES["complaint.filed.v1"]
    event = decode(wire("complaint.filed.v1", {**sample, "description": "C:\\u0000"}))
    assert event.data.description == "C:\\u0000"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the error itself


def test_a_contract_error_fits_a_dead_letter_however_much_went_wrong() -> None:
    error = ContractError(
        "invalid_data", "x" * (MAX_TEXT_LENGTH * 3), [{"loc": str(i), "msg": "m"} for i in range(500)]
    )
    assert len(error.message) == MAX_TEXT_LENGTH
    assert len(error.details) == MAX_ERROR_DETAILS
    sample = SAMPLES["recovery.decision.made.v1"]
    many = put(sample, "reasons", [{"code": "", "text": ""}] * 20)
    refused = refusal(wire("recovery.decision.made.v1", many))
    assert len(refused.details) == 40
    assert refused.message.endswith("(and 37 more)")

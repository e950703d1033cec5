"""The bound of every envelope attribute and event type field, read from the JSON Schemas.

:func:`limits` walks a schema the models generate (``schemas/events/*.json``) and lists each
field with what it holds and its bound: a string's length, an amount's digits, a list's
items. :func:`tables` renders them as the Markdown tables of ``docs/limits.md``, which
``schemagen --limits-page`` writes and a test compares with the models, so the page says
what the code checks. The tests walk the same list to try every bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.contract.limits import MAX_DATA_DEPTH, MAX_EVENT_BYTES
from services.common.contract.money import AMOUNT_PATTERN, MAX_AMOUNT_DECIMALS, MAX_AMOUNT_DIGITS


@dataclass(frozen=True)
class Limit:
    """One field: ``path`` is dotted, ``[]`` for a list's items (``remedies[].amount``)."""

    path: str
    value: str  # what it holds, in words
    bound: str  # its bound, in words; "" when its values are a fixed set or a time
    schema: dict[str, Any]  # the field's own schema, references and null options resolved


def limits(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, prefix: str = "") -> list[Limit]:
    """The fields of the object ``schema`` (``root`` holds its ``$defs``), depth first."""
    found: list[Limit] = []
    for name, prop in schema.get("properties", {}).items():
        found += _field(prefix + name, prop, root or schema)
    return found


def resolve(prop: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """``prop`` with a ``$ref`` followed and an optional field's null option left out."""
    if "$ref" in prop:
        return resolve(root["$defs"][prop["$ref"].removeprefix("#/$defs/")], root)
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return {**resolve(options[0], root), **{k: v for k, v in prop.items() if k != "anyOf"}}
    return dict(prop)


def _field(path: str, prop: Mapping[str, Any], root: Mapping[str, Any]) -> list[Limit]:
    prop = resolve(prop, root)
    if prop.get("type") == "object" and "properties" in prop:
        return limits(prop, root, path + ".")
    if prop.get("type") == "array":
        low, high = prop.get("minItems", 0), prop.get("maxItems")
        bound = "" if high is None else f"{low:,} to {high:,} items" if low else f"at most {high:,} items"
        return [Limit(path, "list", bound, prop), *_field(path + "[]", prop.get("items", {}), root)]
    return [Limit(path, _value(prop), _bound(prop), prop)]


def _value(prop: Mapping[str, Any]) -> str:
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if prop.get("pattern") == AMOUNT_PATTERN:
        return 'decimal string (`"4.99"`)'
    named = {"date-time": "date-time (RFC 3339, with a zone)", "email": "email address"}
    if prop.get("format") in named:
        return named[prop["format"]]
    kind = prop.get("type", "any")
    if "pattern" in prop:
        kind = f"string matching `{prop['pattern']}`"
    about = prop.get("description", "")
    kind = {"boolean": "true or false"}.get(kind, kind)
    return f"{kind}: {about}" if about and "\n" not in about else kind


def _bound(prop: Mapping[str, Any]) -> str:
    if prop.get("pattern") == AMOUNT_PATTERN:
        return (
            f"at most {MAX_AMOUNT_DIGITS} integer digits and {MAX_AMOUNT_DECIMALS} decimals, "
            "and no more decimals than the currency's minor units"
        )
    if "maxLength" in prop:
        low, high = prop.get("minLength", 0), prop["maxLength"]
        return f"{low:,} to {high:,} characters" if low else f"at most {high:,} characters"
    if prop.get("type") == "string" and not {"format", "enum", "const"} & prop.keys():
        return "none of its own"
    return ""


def tables(envelope: Mapping[str, Any], events: Mapping[str, tuple[str, Mapping[str, Any]]]) -> str:
    """The Markdown of the envelope's table and one table per event type; ``events`` maps
    each type to its default topic and its whole-event schema."""
    rows = [
        (
            f"`{lim.path}`",
            lim.value,
            f"nested at most {MAX_DATA_DEPTH} levels deep" if lim.path == "data" else lim.bound,
        )
        for lim in limits(envelope)
    ]
    every = [
        ("the whole Kafka value", f"at most {MAX_EVENT_BYTES:,} bytes", "`too_large`, before it is parsed"),
        ("`data`", f"nested at most {MAX_DATA_DEPTH} levels deep (`data` itself is level 1)", "`invalid_data`"),
        ("every envelope attribute, every key and string in `data`", "no U+0000", "`not_cloudevent`, `invalid_data`"),
    ]
    out = ["## Every message", "", "| what | bound | refused as |", "|---|---|---|"]
    out += [f"| {what} | {bound} | {code} |" for what, bound, code in every]
    out += ["", "## The envelope", "", *_table("attribute", rows), "", "## The data of each event type"]
    for event_type, (topic, schema) in events.items():
        data = resolve(schema["properties"]["data"], schema)
        rows = [(f"`{lim.path}`", lim.value, lim.bound) for lim in limits(data, schema)]
        out += ["", f"### `{event_type}` (on `{topic}`)", "", *_table("field", rows)]
    return "\n".join(out)


def _table(first: str, rows: list[tuple[str, str, str]]) -> list[str]:
    # A | inside a cell, even inside `code`, would end the cell.
    lines = [f"| {first} | value | bound |", "|---|---|---|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") or "-" for c in row) + " |" for row in rows]

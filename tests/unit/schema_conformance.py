"""The published schemas (``schemas/events``), and a small JSON Schema validator for the
keywords pydantic emits for the contract's models: jsonschema is not a dependency."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from services.common.contract import ALL_EVENT_TYPES

_EVENTS = Path(__file__).resolve().parents[2] / "schemas" / "events"
PUBLISHED: dict[str, dict[str, Any]] = {
    m.TYPE: json.loads((_EVENTS / f"{m.TYPE}.json").read_text()) for m in ALL_EVENT_TYPES
}
"""The JSON Schema of each event type as published: what the tests hold the code to."""


def conformance_errors(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return conformance_errors(value, root["$defs"][name], root)
    if "anyOf" in schema:
        options = [conformance_errors(value, s, root) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{value!r} matches no anyOf option"]
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{value!r} not in {schema['enum']}")
    kind = schema.get("type")
    checks = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}
    if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        errors.append(f"{value!r} is not an integer")
    elif kind in checks and not isinstance(value, checks[kind]):
        errors.append(f"{value!r} is not a {kind}")
    elif kind == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{value!r} does not match {schema['pattern']}")
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{value!r} is too short or too long")
        if schema.get("format") == "date-time":
            datetime.fromisoformat(value)
    elif kind == "object":
        errors += [f"missing {k}" for k in schema.get("required", []) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += conformance_errors(value[key], sub, root)
    elif kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{len(value)} items are too many")
        for item in value:
            errors += conformance_errors(item, schema.get("items", {}), root)
    return errors

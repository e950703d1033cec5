"""The domains are pure: they import from an allow-list and never read a clock or randomness.

Every module under services/recovery/domain and services/notifier/domain is parsed (not
imported, not searched as text): its imports must be on the allow-list of its domain, and
no call may read the clock, a monotonic timer, randomness or a random id. Time and ids are
inputs (``now``, ``VoucherCodes``, a ``random.Random`` given by the caller), so a replay
decides as the first run did.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Standard library modules with no clock, randomness, I/O of the process's own or network.
STDLIB = {
    "__future__", "abc", "base64", "bisect", "collections", "dataclasses", "datetime", "decimal",
    "enum", "functools", "hashlib", "hmac", "itertools", "math", "operator", "re", "statistics",
    "string", "typing", "uuid",  # uuid5 only: uuid1 and uuid4 are forbidden calls below
    # The shipped policy, roster and templates are read from the package's own files.
    "pathlib", "tomllib",
    # Calendar data: time zones, and the `holidays` package's tables of public holidays
    # (business-day arithmetic over a calendar is as pure as over a date).
    "zoneinfo",
}  # fmt: skip
CONTRACT = {
    "services.common.contract.events",
    "services.common.contract.money",
    "services.common.contract.ids",
    "services.common.contract.construct",
}
DOMAINS = {
    "services/recovery/domain": STDLIB | CONTRACT | {"pydantic", "holidays"},
    # The notifier renders (jinja2, sandboxed), formats money and dates by locale (babel),
    # scrubs what it renders, reads the envelope of the decision it answers and names the
    # case by the reference the recovery domain derives from its id.
    "services/notifier/domain": STDLIB
    | CONTRACT
    | {
        "pydantic",
        "jinja2",
        "babel",
        "services.common.redact",
        "services.common.contract.envelope",
        "services.recovery.domain.reference",
    },
}
# Imported for a type alone: retry.py is given its ``random.Random`` (calls are forbidden).
TYPE_ONLY = {("services/notifier/domain/retry.py", "random")}

# Calls that read the clock, a timer, randomness or a random id, by qualified name; a name
# ending in ".*" forbids every call into that module.
FORBIDDEN_CALLS = {
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today", "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns",
    "time.perf_counter", "uuid.uuid1", "uuid.uuid4", "random.*", "secrets.*", "os.*",
}  # fmt: skip
# Whatever the object, these read the clock (``dt.datetime.now()``, ``self.clock.now()``).
FORBIDDEN_METHODS = {"now", "utcnow", "today"}


def _module_allowed(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def violations(source: str, allowed: set[str], own: str, type_only: Collection[str] = ()) -> list[str]:
    """What in ``source`` breaks the rules: imports off the allow-list, forbidden calls."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> qualified name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[(alias.asname or alias.name).split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
                if not (_module_allowed(alias.name, allowed | {own}) or alias.name in type_only):
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("a relative import")
                continue
            module = node.module or ""
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            if not (_module_allowed(module, allowed | {own}) or module in type_only):
                found.append(f"from {module} import")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func)
        if dotted is None:
            continue
        head, _, rest = dotted.partition(".")
        qualified = ".".join(p for p in (aliases.get(head, head), rest) if p)
        module = qualified.split(".")[0]
        if (
            qualified in FORBIDDEN_CALLS
            or f"{module}.*" in FORBIDDEN_CALLS
            or dotted.split(".")[-1] in FORBIDDEN_METHODS
        ):
            found.append(f"{dotted}() (line {node.lineno})")
    return found


MODULES = sorted(path for domain in DOMAINS for path in (ROOT / domain).glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_imports_only_its_allow_list_and_reads_no_clock_or_randomness(path: Path) -> None:
    domain = str(path.parent.relative_to(ROOT))
    relative = str(path.relative_to(ROOT))
    type_only = {module for file, module in TYPE_ONLY if file == relative}
    bad = violations(path.read_text(encoding="utf-8"), DOMAINS[domain], domain.replace("/", "."), type_only)
    assert not bad, f"{relative}: {bad}"


def test_both_domains_are_checked() -> None:
    assert {str(p.parent.relative_to(ROOT)) for p in MODULES} == set(DOMAINS)
    assert len(MODULES) > 20


RECOVERY = DOMAINS["services/recovery/domain"]
OWN = "services.recovery.domain"


@pytest.mark.parametrize(
    "source",
    [
        "import faststream.kafka",
        "import structlog",
        "from services.common.db import connect",
        "from services.common.contract.envelope import CloudEvent",
        "import os",
        "import socket",
        "import secrets",
        "import random",
        "import time",
        "from random import choice",
        "from . import case",
    ],
)
def test_an_import_off_the_allow_list_is_caught(source: str) -> None:
    assert violations(source, RECOVERY, OWN)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "from datetime import UTC, datetime\nx = datetime.now(UTC)",
        "import datetime as dt\nx = dt.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import uuid\nx = uuid.uuid4()",
        "from uuid import uuid1\nx = uuid1()",
        "x = clock.now()",
        "import random\nx = random.Random()",
    ],
)
def test_a_call_that_reads_the_clock_or_randomness_is_caught(source: str) -> None:
    assert violations(source, RECOVERY, OWN, {"random"})


@pytest.mark.parametrize(
    "source",
    [
        "import uuid\nx = uuid.uuid5(uuid.NAMESPACE_URL, 'a')",
        "from datetime import datetime, timedelta\nx = datetime(2026, 1, 1) + timedelta(days=1)",
        "from zoneinfo import ZoneInfo\nx = ZoneInfo('Europe/Madrid')",
        "import holidays",
        "from services.recovery.domain.case import Case",
        "from services.common.contract.money import quantize",
    ],
)
def test_pure_code_passes(source: str) -> None:
    assert violations(source, RECOVERY, OWN) == []

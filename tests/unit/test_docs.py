"""The documentation says what the code does: the README stays short and names the two
commands, the contract page lists every field of every model, the policy book the shipped
numbers, the operations guide every setting; and nothing points outside the repository."""

from __future__ import annotations

import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from services.common.contract.envelope import CloudEvent
from services.common.contract.events import ALL_EVENT_TYPES, EventData
from services.common.settings import CommonSettings
from services.notifier.settings import NotifierSettings
from services.recovery.domain.policy import DEFAULT_POLICY_FILE, CurrencyLimits, Policy
from services.recovery.settings import RecoverySettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Built in pieces, so that this file does not match itself.
FORBIDDEN = [
    re.compile(re.escape("POLICY" + ".md")),
    re.compile(re.escape("CONTRACT" + ".md")),
    re.compile(re.escape("../" + "shared")),
    re.compile(re.escape("shared" + "/" + "seeds")),
    re.compile(r"\b" + "session" + r"s?[- ]\d", re.IGNORECASE),
    re.compile(r"\b" + "seed" + r"s? ?\d{3}\b|\b" + "seed" + r" stor(y|ies)\b", re.IGNORECASE),
]
SCANNED = ["README.md", "CHANGELOG.md", "CONTRIBUTING.md", "Makefile", "pyproject.toml",
           "docs", "services", "tests", "bench", "deploy", "schemas"]  # fmt: skip


def _text_files() -> Iterator[Path]:
    for name in SCANNED:
        path = ROOT / name
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                yield f


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; the rest belongs in docs/"
    head = "\n".join(lines[:8])
    assert "make demo" in head
    assert "make test" in head


def test_nothing_points_outside_the_repository_or_at_how_it_was_made() -> None:
    found = []
    for f in _text_files():
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            found += [f"{f.relative_to(ROOT)}:{n}: {line.strip()}" for p in FORBIDDEN if p.search(line)]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- markdown tables


def _tables(page: Path) -> dict[str, dict[str, list[str]]]:
    """For each heading: the first cell's backticked names -> the row's other cells.

    A heading is keyed by every backticked name in it and by its plain text; a row such as
    ``| `SMTP_HOST`, `SMTP_PORT` | ...`` gives one entry per name.
    """
    out: dict[str, dict[str, list[str]]] = {}
    rows: dict[str, list[str]] = {}
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            rows = {}
            title = line.lstrip("#").strip()
            for key in [title, *re.findall(r"`([^`]+)`", title)]:
                out[key] = rows
        elif line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1:]
    return out


# --------------------------------------------------------------------------- the contract


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _wire_models() -> dict[str, type[BaseModel]]:
    """Every model on the wire, by the name its section has: the type, or the class name."""
    found: dict[str, type[BaseModel]] = {"CloudEvent": CloudEvent}
    todo: list[type[BaseModel]] = list(ALL_EVENT_TYPES)
    while todo:
        model = todo.pop()
        key = model.TYPE if issubclass(model, EventData) else model.__name__
        if key in found:
            continue
        found[key] = model
        for field in model.model_fields.values():
            todo += _models_in(field.annotation)
    return found


@pytest.mark.parametrize("name", sorted(_wire_models()))
def test_the_contract_page_lists_exactly_the_fields_of_each_model(name: str) -> None:
    model = _wire_models()[name]
    section = _tables(DOCS / "contract.md").get(name)
    assert section is not None, f"docs/contract.md has no section for `{name}`"
    assert set(section) == set(model.model_fields), f"`{name}`: page and model differ"
    for field_name, info in model.model_fields.items():
        # specversion has a default for the events the services build; on the wire it is required.
        required = info.is_required() or (model is CloudEvent and field_name == "specversion")
        assert section[field_name][1] == ("yes" if required else "no"), f"`{name}.{field_name}` required?"


# --------------------------------------------------------------------------- the policy book


def _cell_value(cell: str) -> str:
    return cell.strip().strip("`")


def test_the_policy_page_gives_the_shipped_parameters() -> None:
    shipped = tomllib.loads(DEFAULT_POLICY_FILE.read_text())
    rows = _tables(DOCS / "policy.md")["Parameters"]
    tables = {"limits", "approval_limits", "calendars", "clocks"}  # described in their own sections
    scalars = {k: v for k, v in shipped.items() if k not in tables}
    assert set(rows) == set(Policy.model_fields) - tables == set(scalars)
    for name, value in scalars.items():
        assert _cell_value(rows[name][0]) == str(value), name


def test_the_policy_page_gives_the_shipped_limits_per_currency() -> None:
    shipped = tomllib.loads(DEFAULT_POLICY_FILE.read_text())["limits"]
    table = [line for line in (DOCS / "policy.md").read_text().splitlines() if line.startswith("| limit |")]
    assert len(table) == 1, "one limits table, headed | limit | <currencies> | meaning |"
    currencies = [c.strip() for c in table[0].split("|")[2:-2]]
    assert currencies == list(shipped)
    rows = _tables(DOCS / "policy.md")["Limits per currency"]
    assert set(rows) == set(CurrencyLimits.model_fields)
    for name in CurrencyLimits.model_fields:
        assert [_cell_value(c) for c in rows[name][: len(currencies)]] == [shipped[c][name] for c in currencies], name


def test_the_policy_page_gives_the_shipped_approval_limits() -> None:
    shipped = tomllib.loads(DEFAULT_POLICY_FILE.read_text())["approval_limits"]
    rows = _tables(DOCS / "policy.md")["Approval limits"]
    assert {c: _cell_value(v[0]) for c, v in rows.items()} == shipped
    assert {c: str(a) for c, a in Policy().approval_limits.items()} == shipped


# --------------------------------------------------------------------------- the settings


def _settings_fields() -> set[str]:
    names: set[str] = set()
    for cls in (CommonSettings, RecoverySettings, NotifierSettings):
        names |= {n.upper() for n in cls.model_fields}
    return names


def test_the_operations_guide_lists_every_setting_and_no_other() -> None:
    text = (DOCS / "operations.md").read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    documented = {name for line in section.splitlines() if line.startswith("| `")
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}  # fmt: skip
    assert documented == _settings_fields()


def test_the_helpers_above_see_what_they_parse() -> None:
    # Guards the guards: the parsing finds real rows, so the checks above cannot pass on nothing.
    contract = _tables(DOCS / "contract.md")
    assert "charge_id" in contract["billing.charge.posted.v1"]
    assert len(_wire_models()) > len(ALL_EVENT_TYPES)
    assert "KAFKA_BOOTSTRAP_SERVERS" in _settings_fields()

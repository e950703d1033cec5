"""The domain imports only the standard library, pydantic and the contract's events/money."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import services.recovery.domain as domain

DOMAIN_DIR = Path(domain.__file__).parent
ALLOWED_THIRD_PARTY = {"pydantic"}
ALLOWED_PROJECT = {
    "services.common.contract.events",
    "services.common.contract.money",
    "services.common.contract.ids",
    "services.common.contract.construct",
}
OWN_PREFIX = "services.recovery.domain"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.append(node.module or "")
    return names


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in ALLOWED_THIRD_PARTY
        or name in ALLOWED_PROJECT
        or name == OWN_PREFIX
        or name.startswith(OWN_PREFIX + ".")
    )


@pytest.mark.parametrize("path", sorted(DOMAIN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_only_the_allow_list(path: Path) -> None:
    bad = [name for name in _imports(path) if not _allowed(name)]
    assert not bad, f"{path.name} imports {bad}"


def test_the_allow_list_check_catches_a_broker_import() -> None:
    assert not _allowed("faststream.kafka")
    assert not _allowed("structlog")
    assert not _allowed("services.common.db")
    assert not _allowed("services.common.contract.envelope")


def test_domain_modules_never_read_the_clock_or_randomness() -> None:
    for path in DOMAIN_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for forbidden in (".now(", ".utcnow(", "time.time(", "import random", "uuid4("):
            assert forbidden not in text, f"{path.name} uses {forbidden}"

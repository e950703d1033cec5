"""The notifier's domain stays pure: stdlib, pydantic, jinja2, babel, the wire contract,
the one scrub of personal data and the case reference's derivation (both themselves pure)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import services.common.redact
import services.notifier.domain

DOMAIN = Path(services.notifier.domain.__file__).parent
THIRD_PARTY = {"pydantic", "jinja2", "babel"}
OURS = (
    "services.common.contract",
    "services.common.redact",
    "services.recovery.domain.reference",
    "services.notifier.domain",
)


def _imports(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # A relative import is refused by name ("."), so it cannot slip past the list.
            found.append(("." * node.level + (node.module or ""), node.lineno))
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in THIRD_PARTY:
        return True
    return any(module == ours or module.startswith(ours + ".") for ours in OURS)


def test_domain_imports_only_the_allow_list() -> None:
    files = [*sorted(DOMAIN.glob("*.py")), Path(services.common.redact.__file__)]
    assert len(files) >= 6
    bad = [
        f"{path.name}:{line} imports {module}"
        for path in files
        for module, line in _imports(path)
        if not _allowed(module)
    ]
    assert bad == []


def test_the_check_catches_a_broker_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import structlog\nfrom faststream import Logger\nfrom . import x\n")
    assert [m for m, _ in _imports(sneaky) if not _allowed(m)] == [
        "structlog",
        "faststream",
        ".",
    ]

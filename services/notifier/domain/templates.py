"""The apology templates: jinja2 files per language that operators can edit.

A template set is a directory with one folder per language (``es``, ``en``) holding, for
each template name, three files: ``<name>.subject.txt``, ``<name>.txt`` and ``<name>.html``
(files starting with ``_`` are shared pieces: ``_wording.jinja`` holds every sentence, so
the text and HTML parts say the same). Every template is checked when the set is
loaded, so a missing file or a syntax error stops the notifier at start-up rather than at
the first email. HTML is autoescaped; a variable the template names but the context lacks
is an error, never a blank. Templates run sandboxed: editing wording cannot reach Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from services.notifier.domain.errors import TemplateSetError
from services.notifier.domain.locales import LANGUAGES, Language

SHIPPED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
"""The templates shipped in the package (``services/notifier/templates``)."""

DECISION_RESOLVED = "decision_resolved"
DECISION_DECLINED = "decision_declined"
ESCALATION_ACK = "escalation_ack"
TEMPLATE_NAMES: tuple[str, ...] = (DECISION_RESOLVED, DECISION_DECLINED, ESCALATION_ACK)

_PARTS = {"subject": "subject.txt", "text": "txt", "html": "html"}
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Rendered:
    """One email's rendered parts."""

    subject: str
    text: str
    html: str


class TemplateSet:
    """Every template of every language, parsed once; :meth:`render` does no file I/O."""

    def __init__(self, templates: Mapping[tuple[Language, str, str], Template]) -> None:
        self._templates = dict(templates)

    def render(self, language: Language, name: str, context: Mapping[str, object]) -> Rendered:
        """Render template ``name`` in ``language``; raise :class:`TemplateSetError` if it fails."""
        try:
            parts = {part: self._templates[(language, name, part)].render(context) for part in _PARTS}
        except KeyError:
            raise TemplateSetError(f"no template {name!r} in {language!r}") from None
        except TemplateError as exc:
            raise TemplateSetError(f"template {language}/{name} failed: {exc}") from exc
        return Rendered(
            subject=" ".join(parts["subject"].split()),
            text=_tidy_text(parts["text"]),
            html=parts["html"].strip(),
        )


def _tidy_text(text: str) -> str:
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _BLANK_RUNS.sub("\n\n", lines)


def _environment(root: Path, *, html: bool) -> SandboxedEnvironment:
    # Two environments over the same files: the shared wording compiles once escaping (for
    # HTML) and once not (for text). One environment with per-extension autoescape would
    # not do: a macro from a text file called from HTML takes the caller's mode and returns
    # its unescaped output marked safe.
    return SandboxedEnvironment(
        loader=FileSystemLoader(root),
        autoescape=html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def load_templates(directory: Path | None = None) -> TemplateSet:
    """Load and check a template set from ``directory`` (``None``: the shipped templates)."""
    root = directory if directory is not None else SHIPPED_TEMPLATES
    if not root.is_dir():
        raise TemplateSetError(f"template directory {root} does not exist")
    envs = {False: _environment(root, html=False), True: _environment(root, html=True)}
    templates: dict[tuple[Language, str, str], Template] = {}
    for language in LANGUAGES:
        # Shared pieces are parsed too, so an error in one shows now, not at first use.
        for piece in sorted((root / language).glob("_*")):
            for env in envs.values():
                _check(env, f"{language}/{piece.name}", root)
        for name in TEMPLATE_NAMES:
            for part, suffix in _PARTS.items():
                path = f"{language}/{name}.{suffix}"
                templates[(language, name, part)] = _check(envs[part == "html"], path, root)
    return TemplateSet(templates)


def _check(env: SandboxedEnvironment, path: str, root: Path) -> Template:
    try:
        return env.get_template(path)
    except TemplateError as exc:
        raise TemplateSetError(f"template {path} in {root}: {exc}") from exc

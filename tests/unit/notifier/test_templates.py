"""Operators edit the wording; a broken template stops the notifier at load, not at send."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import services.notifier
from services.notifier.domain.compose import compose
from services.notifier.domain.errors import TemplateSetError
from services.notifier.domain.locales import LANGUAGES
from services.notifier.domain.templates import SHIPPED_TEMPLATES, TEMPLATE_NAMES, load_templates
from tests.unit.notifier.factories import decision, envelope


@pytest.fixture
def editable(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(SHIPPED_TEMPLATES, copy)
    return copy


def test_templates_ship_inside_the_package() -> None:
    package = Path(services.notifier.__file__).parent
    assert SHIPPED_TEMPLATES.is_relative_to(package)
    for language in LANGUAGES:
        for name in TEMPLATE_NAMES:
            for suffix in ("subject.txt", "txt", "html"):
                assert (SHIPPED_TEMPLATES / language / f"{name}.{suffix}").is_file()


def test_an_edited_copy_changes_the_wording(editable: Path) -> None:
    wording = editable / "en" / "_wording.jinja"
    wording.write_text(wording.read_text().replace("I am sorry for what happened", "We apologise sincerely"))
    data = decision()
    req = compose(envelope(data), data, load_templates(editable))
    assert req is not None
    assert "We apologise sincerely" in req.text
    assert "We apologise sincerely" in req.html, "one wording file feeds both parts"


def test_a_missing_template_is_refused_at_load(editable: Path) -> None:
    (editable / "es" / "escalation_ack.html").unlink()
    with pytest.raises(TemplateSetError, match=r"escalation_ack\.html"):
        load_templates(editable)


def test_a_syntax_error_in_a_shared_piece_is_refused_at_load(editable: Path) -> None:
    wording = editable / "es" / "_wording.jinja"
    wording.write_text(wording.read_text() + "\n{% if %}\n")
    with pytest.raises(TemplateSetError, match=r"_wording\.jinja"):
        load_templates(editable)


def test_a_missing_variable_is_an_error_not_a_blank(editable: Path) -> None:
    body = editable / "en" / "decision_resolved.txt"
    body.write_text(body.read_text() + "\n{{ customer.loyalty_tier }}\n")
    templates = load_templates(editable)
    data = decision()
    with pytest.raises(TemplateSetError, match="loyalty_tier"):
        compose(envelope(data), data, templates)


def test_templates_cannot_reach_python(editable: Path) -> None:
    body = editable / "en" / "decision_resolved.txt"
    body.write_text(body.read_text() + "\n{{ owner.__class__.__mro__ }}\n")
    templates = load_templates(editable)
    data = decision()
    with pytest.raises(TemplateSetError):
        compose(envelope(data), data, templates)


def test_a_directory_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TemplateSetError, match="does not exist"):
        load_templates(tmp_path / "nowhere")

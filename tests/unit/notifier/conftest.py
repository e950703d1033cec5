from __future__ import annotations

import pytest

from services.notifier.domain.templates import TemplateSet, load_templates


@pytest.fixture(scope="session")
def templates() -> TemplateSet:
    return load_templates()

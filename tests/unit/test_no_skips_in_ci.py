"""Under CI=true a skipped test fails the run (tests/conftest.py); locally it is only reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_one_skip.py").write_text(
        "import pytest\n\ndef test_passes():\n    pass\n\ndef test_skips():\n    pytest.skip('no tool')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout[-2000:]
    assert "skipped under CI=true" in result.stdout
    assert "test_one_skip.py::test_skips" in result.stdout


def test_a_skip_is_reported_but_passes_outside_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode == pytest.ExitCode.OK, result.stdout[-2000:]
    assert "SKIPPED" in result.stdout

"""The commands the deployment runs exist and answer ``--help`` (docs/contract.md).

The compose file, the Kubernetes Job and the docs call ``recoveryctl migrate``,
``recoveryctl topics create``, ``recoveryctl replay`` and ``recoveryctl whatif``. While a
program's module is not written yet its check is skipped; once it lands, a missing
subcommand fails here rather than in a cluster.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest

from tests.unit.deploy.manifests import console_scripts

DEPLOYED_COMMANDS = [
    ("recovery-service", []),
    ("notifier-service", []),
    ("delivery-worker", []),
    ("recoveryctl", []),
    ("recoveryctl", ["migrate"]),
    ("recoveryctl", ["topics", "create"]),
    ("recoveryctl", ["replay"]),
    ("recoveryctl", ["replay", "rebuild"]),
    ("recoveryctl", ["replay", "publish"]),
    ("recoveryctl", ["whatif"]),
]


def _entry_point(script: str) -> importlib.metadata.EntryPoint:
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name=script)
    return entry


def _written(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing too
        return False


@pytest.mark.parametrize(("script", "subcommand"), DEPLOYED_COMMANDS)
def test_deployed_command_answers_help(script, subcommand):
    assert script in console_scripts()
    entry = _entry_point(script)
    assert _written(entry.module), f"{script} runs {entry.module}, which does not exist"
    runner = (
        "import sys; from importlib import import_module; "
        f"sys.argv = [{script!r}, *sys.argv[1:]]; "
        f"sys.exit(getattr(import_module({entry.module!r}), {entry.attr!r})())"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner, *subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower(), result.stdout[-2000:]

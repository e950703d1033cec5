"""A running `recoveryctl dev` is found through its data directory, and only while it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.recovery.entrypoints import devrun

ENV = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092", "DATABASE_URL": "postgresql://postgres@/recovery?host=/x"}


def test_no_stack_file_means_no_stack(tmp_path: Path) -> None:
    assert devrun.find_running(tmp_path) is None


def test_an_announced_stack_is_found_with_what_points_a_client_at_it(tmp_path: Path) -> None:
    stack = devrun.DevStack(env=dict(ENV))
    devrun.announce(stack, tmp_path, services=True)
    try:
        running = devrun.find_running(tmp_path)
        assert running is not None
        assert running.services is True
        assert running.maildir == (tmp_path / "mail").resolve()
        settings = running.settings()
        assert settings.kafka_bootstrap_servers == ENV["KAFKA_BOOTSTRAP_SERVERS"]
        assert settings.database_dsn() == ENV["DATABASE_URL"]
        # The topic names travel too, so a demo without the stack's environment uses its topics.
        assert running.env["TOPIC_COMPLAINTS"] == settings.topic_complaints == "customer.complaints"
        assert (tmp_path / devrun.STACK_FILE).stat().st_mode & 0o077 == 0  # it holds DATABASE_URL
    finally:
        stack.exit.close()
    assert devrun.find_running(tmp_path) is None
    assert not (tmp_path / devrun.STACK_FILE).exists()


def test_a_file_left_behind_by_a_stack_that_died_is_ignored(tmp_path: Path) -> None:
    # Written as a stack writes it, but no process holds its lock (the kernel released it).
    body = {"pid": 1, "services": True, "maildir": str(tmp_path / "mail"), "env": ENV}
    (tmp_path / devrun.STACK_FILE).write_text(json.dumps(body))
    assert devrun.find_running(tmp_path) is None


def test_a_second_stack_on_the_same_data_directory_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Servers that do not exist: were the refusal missing, bring_up would fail on them rather
    # than start bundled ones.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    stack = devrun.DevStack(env=dict(ENV))
    devrun.announce(stack, tmp_path, services=False)
    try:
        with pytest.raises(SystemExit) as exited:
            devrun.bring_up(tmp_path, None, 3)
        assert exited.value.code == 2
    finally:
        stack.exit.close()

"""`recoveryctl dlq` and `outbox` refuse bad input with one line naming the argument, before
reaching for the broker or the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from services.recovery.entrypoints.cli import app
from services.recovery.entrypoints.cli_dlq import parse_since

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:30", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026-11-20T08:30+02:00", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
    ],
)
def test_since_takes_a_date_a_time_or_a_span_back_from_now(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["dlq", "list", "--since", "yesterday"], "--since:"),
        (["dlq", "list", "--code", "broken"], "--code:"),
        (["dlq", "redrive", "some-id"], "--file/--as-is:"),
        (["dlq", "redrive", "some-id", "--as-is", "--file", "x.json"], "--file/--as-is:"),
        (["dlq", "redrive", "some-id", "--file", "/nonexistent/fixed.json"], "--file:"),
        (["outbox", "retry"], "ID:"),
        (["outbox", "retry", "7", "--all"], "ID:"),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(args: list[str], field: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(field)
    assert result.exception is None or isinstance(result.exception, SystemExit)

"""`recoveryctl` never cuts an id, whatever the terminal's width, and refuses a bad amount
with one line naming the option, before reaching for the database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console
from typer.testing import CliRunner

from services.recovery.entrypoints.cli import app
from services.recovery.entrypoints.cli_input import parse_money
from services.recovery.entrypoints.cli_output import print_cases, print_table, time_left
from services.recovery.queries import CaseSummary

CASE = "ec7b8ded-f378-5773-ab31-f242fb416a41"
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _case(case_id: str = CASE, reason: str = "over the agent's approval limit") -> CaseSummary:
    return CaseSummary(case_id=case_id, customer_id="customer-with-a-long-id-0042", complaint_id="cmp-1",
                       category="billing_error", status="escalated", owner_id="owner-1", priority="high",
                       assignee="agent:maria", reason=reason, sla_deadline=AT, contacts=1, opened_at=AT,
                       updated_at=AT, version=3)  # fmt: skip


def _printed(width: int, show: object) -> str:
    out = Console(file=io.StringIO(), width=width)
    show(out)  # type: ignore[operator]
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_a_case_list_shows_every_id_and_reference_whole_at_any_width(width: int) -> None:
    cases = [_case(), _case("case-2", reason="a long reason " * 12)]
    cells = [[c.case_id, c.reference, c.customer_id, c.reason or ""] for c in cases]
    text = _printed(width, lambda out: print_table("Cases", ("case", "reference", "customer", "reason"), cells,
                                                   ids={"case", "reference", "customer"}, out=out))  # fmt: skip
    lines = text.splitlines()
    for c in cases:
        for whole in (c.case_id, c.reference, c.customer_id):
            assert any(whole in line for line in lines), (width, whole)


def test_a_wide_terminal_gets_a_table_and_a_narrow_one_a_block_per_row() -> None:
    cells = [[CASE, "RC-XWVA-S9H7-RCDH", "escalated"]]
    wide = _printed(
        200, lambda out: print_table("Cases", ("case", "reference", "status"), cells, ids={"case"}, out=out)
    )
    assert "┃ case" in wide
    narrow = _printed(
        30, lambda out: print_table("Cases", ("case", "reference", "status"), cells, ids={"case"}, out=out)
    )
    assert f"case       {CASE}" in narrow.splitlines()
    assert "reference  RC-XWVA-S9H7-RCDH" in narrow.splitlines()


def test_a_case_list_as_json_is_one_array_with_stable_keys(capsys: pytest.CaptureFixture[str]) -> None:
    print_cases([_case()], "Escalations", as_json=True)
    items = json.loads(capsys.readouterr().out)
    assert [list(i) for i in items] == [[*CaseSummary.model_fields, "reference"]]
    assert items[0]["case_id"] == CASE
    assert items[0]["reference"] == "RC-XWVA-S9H7-RCDH"


def test_the_case_list_shows_the_time_left_on_the_persons_calendar() -> None:
    case = _case()
    assert time_left(case) == "-"  # not counted (decided, or not asked for)
    assert time_left(case.model_copy(update={"time_left_s": 7_530.0, "calendar_open": True})) == "2h 05m"
    assert time_left(case.model_copy(update={"time_left_s": 7_530.0, "calendar_open": False})) == "2h 05m (paused)"
    assert time_left(case.model_copy(update={"time_left_s": -1_800.0})) == "overdue 0h 30m"  # wall time, no calendar
    shown = case.model_copy(update={"time_left_s": 600.0, "calendar_open": False, "person_due_by": AT})
    text = _printed(200, lambda out: print_table("Escalations", ("time left",), [[time_left(shown)]], out=out))
    assert "0h 10m (paused)" in text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("12.50", "expected AMOUNT CURRENCY"),
        ("12.50 USD extra", "expected AMOUNT CURRENCY"),
        ("12.50 XYZ", "'XYZ' is not an ISO 4217 currency code"),
        ("-5 USD", "the amount must be a decimal more than zero"),
        ("0 USD", "the amount must be a decimal more than zero"),
        ("12,50 EUR", "the amount must be a decimal more than zero"),
        ("1e3 USD", "the amount must be a decimal more than zero"),
        ("١٢ USD", "the amount must be a decimal more than zero"),
        ("12.505 USD", "an amount in USD has at most 2 decimals, not 3"),
        ("1.5 JPY", "an amount in JPY has at most 0 decimals, not 1"),
        ("1" * 16 + " USD", "the amount must be a decimal more than zero"),
    ],
)
def test_a_bad_amount_is_refused_naming_the_option(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"^--refund: ") as raised:
        parse_money("--refund", text)
    assert why in str(raised.value)


def test_a_good_amount_reads_with_its_currency_in_capitals() -> None:
    assert parse_money("--voucher", " 12.50  usd ") == (Decimal("12.50"), "USD")
    assert str(parse_money("--refund", "3000 JPY")[0]) == "3000"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--refund", "12.50"], "--refund:"),
        (["--refund", "12.50 XYZ"], "--refund:"),
        (["--refund", "-3 USD"], "--refund:"),
        (["--voucher", "ten EUR"], "--voucher:"),
        ([], "--refund/--voucher/--replacement/--repair/--cancellation/--decline:"),
    ],
)
def test_cases_decide_refuses_bad_input_in_one_line_with_exit_code_2(args: list[str], field: str) -> None:
    for columns in ("60", "200"):
        result = CliRunner().invoke(app, ["cases", "decide", CASE, "--as", "maria", *args], env={"COLUMNS": columns})
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(field)
        assert result.exception is None or isinstance(result.exception, SystemExit)

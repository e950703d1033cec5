"""What the operator commands print: one-line errors, JSON, and tables that never cut an id."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.recovery.queries import CaseSummary

console = Console()
JSON_HELP = "one JSON array on stdout, for scripts"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as one line (never wrapped, no markup read into it); the exit to raise."""
    console.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(code)


def printed_as_json_or_none(as_json: bool, items: list[dict[str, Any]], none: str) -> bool:
    """Print ``items`` as JSON (with ``as_json``), or ``none`` if there are none; return
    whether that was all there was to print (else the caller prints its table)."""
    if as_json:
        print(json.dumps(items, indent=2))
    elif not items:
        console.print(none)
    return as_json or not items


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], ids: Collection[str] = (), out: Console = console
) -> None:
    """``rows`` as a table if it fits the terminal with every cell of the ``ids`` columns
    whole, else each row as a block of ``column  value`` lines. Nothing is cut or cropped
    either way: an id on screen is one that ``cases show`` takes."""
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(len(columns))]
    table = Table(title=title)
    for col, width in zip(columns, widths, strict=True):
        if col in ids:
            table.add_column(col, no_wrap=True, min_width=max(width, len(col)))
        else:  # the rest folds, but not into a column too narrow to read
            table.add_column(col, overflow="fold", min_width=min(max(width, len(col)), 12))
    for r in rows:
        table.add_row(*(Text(cell) for cell in r))  # text as it is: no markup read into it
    # Each column's least width, its padding (2) and a border (1), and the last border.
    if sum(c.min_width or 0 for c in table.columns) + 3 * len(columns) + 1 <= out.width:
        out.print(table)
        return
    out.print(Text(title, style="bold"))
    label = max(len(c) for c in columns)
    for r in rows:
        out.print()
        for col, cell in zip(columns, r, strict=True):
            out.print(Text(f"{col:<{label}}  {cell}"), soft_wrap=True)


def print_cases(rows: Sequence[CaseSummary], title: str, as_json: bool) -> None:
    """Cases as `cases list` shows them: a table (ids and references whole), or JSON."""
    if printed_as_json_or_none(as_json, [r.model_dump(mode="json") for r in rows], f"no {title.lower()}"):
        return
    columns = ("case", "reference", "customer", "category", "status", "priority", "assignee", "reason / rule",
               "due by", "time left")  # fmt: skip
    cells = [[r.case_id, r.reference, r.customer_id, r.category, r.status, r.priority or "-", r.assignee or "-",
              r.reason or r.rule or "-", (r.person_due_by or r.due_by or r.sla_deadline).isoformat(timespec="minutes"),
              time_left(r)] for r in rows]  # fmt: skip
    print_table(title, columns, cells, ids={"case", "reference", "customer", "assignee", "due by", "time left"})


def time_left(case: CaseSummary) -> str:
    """The time left to the person's deadline as `cases list` shows it: business time on the
    person's calendar, "(paused)" while it is closed; "-" once decided."""
    if case.time_left_s is None:
        return "-"
    seconds = round(case.time_left_s)
    hours, minutes = divmod(abs(seconds) // 60, 60)
    text = f"{hours}h {minutes:02d}m" if seconds >= 0 else f"overdue {hours}h {minutes:02d}m"
    return f"{text} (paused)" if case.calendar_open is False else text

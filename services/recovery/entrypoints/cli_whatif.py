"""``recoveryctl whatif``: re-decide past complaints under a candidate policy and report
what would have changed. Reads the event store only (one read-only transaction); never
appends and never produces to Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.common.contract.money import quantize
from services.common.gc_tuning import tune_for_throughput
from services.recovery.bootstrap import connected
from services.recovery.calendars import staffed
from services.recovery.domain.errors import ConfigError
from services.recovery.domain.policy import Policy, load_policy
from services.recovery.domain.roster import Roster, load_roster
from services.recovery.settings import RecoverySettings
from services.recovery.whatif import WhatIf, what_if
from services.recovery.whatif.report import render_terminal, write_csv, write_html
from services.recovery.whatif.source import count_window

console = Console()


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_costs(values: list[str]) -> dict[str, Decimal]:
    """``["11.30 USD", "45200 COP"]`` to ``{"USD": Decimal("11.30"), ...}``."""
    out: dict[str, Decimal] = {}
    for value in values:
        try:
            amount, currency = value.split()
            out[currency.upper()] = quantize(Decimal(amount), currency.upper())
        except (ValueError, InvalidOperation):
            raise typer.BadParameter(f"{value!r}: give AMOUNT CURRENCY, e.g. '11.30 USD'") from None
    return out


def whatif(
    policy: Annotated[Path, typer.Option(help="the candidate policy file (TOML, like the shipped one)")],
    since: Annotated[str | None, typer.Option(help="complaints filed from (ISO 8601; UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option(help="complaints filed before (ISO 8601; UTC if no zone)")] = None,
    html: Annotated[Path | None, typer.Option(help="write the report as a self-contained HTML page")] = None,
    csv: Annotated[Path | None, typer.Option(help="write the cases decided differently as CSV")] = None,
    cost_per_contact: Annotated[
        list[str] | None,
        typer.Option(help="handling cost of one contact, 'AMOUNT CURRENCY' (repeatable); default: the policy's"),
    ] = None,
) -> None:
    """Re-decide past complaints under a candidate policy (simulated clock, read-only) and
    report what changes beside the policy in force."""
    start, end = parse_time(since), parse_time(until)
    overrides = parse_costs(cost_per_contact or [])
    settings = RecoverySettings()
    try:
        candidate = load_policy(policy)
        # The candidate's calendars: its teams' deadlines are counted on them.
        roster = staffed(load_roster(settings.recovery_roster_file), candidate)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    tune_for_throughput()  # a long fold over many live objects: see services/common/gc_tuning.py
    result = asyncio.run(_run(settings, candidate, roster, start, end, overrides))
    render_terminal(result.summary, console)
    if html is not None:
        write_html(result.summary, html)
        console.print(f"HTML report: {html}")
    if csv is not None:
        rows = write_csv(result.results, csv)
        console.print(f"CSV of the cases decided differently ({rows} rows): {csv}")


async def _run(
    settings: RecoverySettings,
    candidate: Policy,
    roster: Roster,
    since: datetime | None,
    until: datetime | None,
    overrides: dict[str, Decimal],
) -> WhatIf:
    async with connected(settings) as pool, pool.acquire() as conn:
        cases, complaints = await count_window(conn, since, until)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            reading = progress.add_task("reading cases", total=cases)
            deciding = progress.add_task("re-deciding complaints", total=complaints)
            return await what_if(
                conn,
                candidate,
                roster,
                since=since,
                until=until,
                cost_overrides=overrides,
                on_read=lambda n: progress.advance(reading, n),
                on_decided=lambda n: progress.advance(deciding, n),
            )

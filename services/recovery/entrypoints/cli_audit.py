"""`recoveryctl audit`: the audit trail (docs/security.md), newest last, from the database
DATABASE_URL names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.recovery import queries
from services.recovery.bootstrap import connected
from services.recovery.entrypoints.cli_dlq import parse_since
from services.recovery.entrypoints.cli_output import fail, printed_as_json_or_none
from services.recovery.settings import RecoverySettings

console = Console()


def audit(
    case: Annotated[str | None, typer.Option("--case", help="only this case's records")] = None,
    person: Annotated[str | None, typer.Option("--person", help="only this person's records")] = None,
    since: Annotated[str | None, typer.Option(help="recorded since: 2026-11-22, 2026-11-22T10:00, 1h, 7d")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, the newest")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array, for scripts")] = False,
) -> None:
    """The audit trail: who read or decided what, when, from which client (newest last)."""
    try:
        after = parse_since(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None

    async def go() -> list[queries.AuditEntry]:
        async with connected(RecoverySettings()) as pool:
            return await queries.audit_trail(pool, case_id=case, person=person, since=after, limit=limit)

    try:
        found = asyncio.run(go())
    except (OSError, asyncpg.PostgresError) as exc:
        raise fail(f"DATABASE_URL: {type(exc).__name__}: {exc}") from None
    if printed_as_json_or_none(as_json, [e.model_dump(mode="json") for e in found], "no audit records"):
        return
    table = Table(title="Audit trail, newest last")
    for col in ("when", "who", "role", "action", "case", "target", "client"):
        table.add_column(col, overflow="fold")
    for e in found:
        action = e.action + (" +note" if e.note else "")
        table.add_row(e.at.isoformat(timespec="seconds"), Text(e.person or "-"), e.role, action,
                      Text(e.case_id or "-"), Text(e.target or "-"), Text(e.client))  # fmt: skip
    console.print(table)

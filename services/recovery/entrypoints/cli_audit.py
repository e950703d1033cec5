"""`recoveryctl audit`: the audit trail (docs/security.md), newest last, from the database
DATABASE_URL names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import typer
from rich.console import Console

from services.recovery import queries
from services.recovery.bootstrap import connected
from services.recovery.entrypoints.cli_dlq import parse_since
from services.recovery.entrypoints.cli_output import JSON_HELP, fail, print_table, printed_as_json_or_none
from services.recovery.settings import RecoverySettings

console = Console()


def audit(
    case: Annotated[
        str | None, typer.Option("--case", help="only this case's records: its id or its reference")
    ] = None,
    person: Annotated[str | None, typer.Option("--person", help="only this person's records")] = None,
    since: Annotated[str | None, typer.Option(help="recorded since: 2026-11-22, 2026-11-22T10:00, 1h, 7d")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, the newest")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The audit trail: who read or decided what, when, from which client (newest last)."""
    try:
        after = parse_since(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None

    async def go() -> list[queries.AuditEntry]:
        async with connected(RecoverySettings()) as pool:
            case_id = None if case is None else await queries.resolve_case_id(pool, case)
            return await queries.audit_trail(pool, case_id=case_id, person=person, since=after, limit=limit)

    try:
        found = asyncio.run(go())
    except queries.AmbiguousReference as exc:
        raise fail(f"--case: {exc}") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise fail(f"DATABASE_URL: {type(exc).__name__}: {exc}") from None
    if printed_as_json_or_none(as_json, [e.model_dump(mode="json") for e in found], "no audit records"):
        return
    rows = [[e.at.isoformat(timespec="seconds"), e.person or "-", e.role, e.action + (" +note" if e.note else ""),
             e.case_id or "-", e.target or "-", e.client] for e in found]  # fmt: skip
    columns = ("when", "who", "role", "action", "case", "target", "client")
    print_table("Audit trail, newest last", columns, rows, ids={"when", "who", "case"})

"""`recoveryctl outbox`: the outbox rows a relay parked because the broker refused them for
good, and sending them again (docs/dead-letters.md, "Parked outbox rows")."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from services.common.db import connect
from services.common.outbox import ParkedRow, parked_rows, retry_parked
from services.recovery.entrypoints.cli_output import console, fail, printed_as_json_or_none
from services.recovery.settings import RecoverySettings

outbox_app = typer.Typer(help="Outbox rows parked by the relays.", no_args_is_help=True)


@outbox_app.command("parked")
def parked(
    relay: Annotated[str | None, typer.Option(help="only this relay's rows (recovery, notifier, delivery)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array, for scripts")] = False,
) -> None:
    """The parked rows, oldest first, with the error that parked each."""

    async def go() -> list[ParkedRow]:
        conn = await connect(RecoverySettings())
        try:
            return await parked_rows(conn, relay)
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if printed_as_json_or_none(as_json, [_as_dict(r) for r in rows], "no parked rows"):
        return
    table = Table(title="Parked outbox rows")
    for col in ("id", "relay", "topic", "event id", "bytes", "parked at", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.id), r.relay, r.topic, r.event_id or "-", str(r.size),
                      r.parked_at.isoformat(timespec="seconds"), r.error)  # fmt: skip
    console.print(table)


@outbox_app.command("retry")
def retry(
    row_id: Annotated[int | None, typer.Argument(metavar="ID", help="the parked row's id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every parked row")] = False,
) -> None:
    """Queue a parked row (or --all) again at the end of the outbox: its relay sends it once
    more, after the messages queued meanwhile."""
    if (row_id is None) == (not all_):
        raise fail("ID: give the id of a parked row, or --all")

    async def go() -> dict[int, int]:
        conn = await connect(RecoverySettings())
        try:
            async with conn.transaction():
                return await retry_parked(conn, None if row_id is None else [row_id])
        finally:
            await conn.close()

    queued = asyncio.run(go())
    if row_id is not None and not queued:
        raise fail(f"ID: no parked row {row_id}", 1)
    for parked_id, outbox_id in queued.items():
        console.print(f"queued again: parked row {parked_id} is outbox row {outbox_id}")
    if not queued:
        console.print("no parked rows")


def _as_dict(r: ParkedRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "relay": r.relay,
        "topic": r.topic,
        "key": r.key.decode("utf-8", "replace") if r.key is not None else None,
        "event_id": r.event_id,
        "bytes": r.size,
        "created_at": r.created_at.isoformat(),
        "parked_at": r.parked_at.isoformat(),
        "error": r.error,
    }

"""`recoveryctl dlq`: see the dead letters and send a fixed message again to the topic it
came from (docs/dead-letters.md, "Dead letters"). Each command first reads what is new on
the dead-letter topic (see :mod:`services.recovery.adapters.dead_letters` for why the topic,
indexed in PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import asyncpg
import typer
from aiokafka.errors import KafkaError
from rich.text import Text

from services.common.contract.events import DeadLetterError
from services.common.db import connect
from services.common.kafka import make_producer
from services.recovery.adapters import dead_letters as dl
from services.recovery.entrypoints.cli_output import JSON_HELP, console, fail, print_table, printed_as_json_or_none
from services.recovery.settings import RecoverySettings

dlq_app = typer.Typer(help="Dead letters: list, show, send again.", no_args_is_help=True)
T = TypeVar("T")
CODES: tuple[str, ...] = get_args(DeadLetterError.model_fields["code"].annotation)
_AGO = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _run(work: Callable[[asyncpg.Connection, RecoverySettings, dl.Synced], Awaitable[T]]) -> T:
    """Read what is new on the dead-letter topic, then ``work``; errors as one line."""
    settings = RecoverySettings()

    async def go() -> T:
        conn = await connect(settings)
        try:
            synced = await dl.sync(conn, settings)
            if synced.not_dead_letters:
                console.print(f"[yellow]{synced.not_dead_letters} record(s) on {settings.topic_dlq} are not "
                              f"dead letters; left out[/]")  # fmt: skip
            return await work(conn, settings, synced)
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except dl.DeadLetterToolError as exc:
        raise fail(str(exc)) from None
    except asyncpg.UndefinedTableError:
        raise fail("DATABASE_URL: the database has no dead_letters table: run `recoveryctl migrate`") from None
    except KafkaError as exc:
        raise fail(f"KAFKA_BOOTSTRAP_SERVERS: {type(exc).__name__}: {exc}") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise fail(f"DATABASE_URL: {type(exc).__name__}: {exc}") from None


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or time (UTC when it names no zone), or a span back from ``now``:
    ``90m``, ``12h``, ``7d``, ``2w``."""
    if match := _AGO.match(text.strip()):
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since: expected a date, a time or a span such as 12h or 7d, not {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dlq_app.command("list")
def list_(
    topic: Annotated[str | None, typer.Option(help="only dead letters from this original topic")] = None,
    code: Annotated[str | None, typer.Option(help=f"only this error code: {', '.join(CODES)}")] = None,
    since: Annotated[str | None, typer.Option(help="received since: 2026-11-22, 2026-11-22T10:00, 12h, 7d")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The dead letters, newest first."""
    if code is not None and code not in CODES:
        raise fail(f"--code: {code!r} is none of {', '.join(CODES)}")
    try:
        after = parse_since(since, datetime.now(UTC)) if since is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None

    async def work(conn: asyncpg.Connection, _s: RecoverySettings, _y: dl.Synced) -> list[dl.StoredDeadLetter]:
        return await dl.find(conn, topic=topic, code=code, since=after, limit=limit)

    found = _run(work)
    if printed_as_json_or_none(as_json, [_summary(d) for d in found], "no dead letters"):
        return
    rows = []
    for d in found:
        s = _summary(d)
        size = f"{s['value_bytes']}" + (" (cut)" if s["truncated"] else "")
        rows.append([d.id, s["received_at"][:19], s["topic"], s["key"] or "-", s["code"], s["message"], size,
                     "yes" if d.redrives else "-"])  # fmt: skip
    columns = ("id", "received", "from topic", "key", "code", "message", "bytes", "redriven")
    print_table("Dead letters, newest first", columns, rows, ids={"id", "received", "key"})  # `show` takes the id


@dlq_app.command("show")
def show(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="the dead letter's id (from `dlq list`)")],
    as_json: Annotated[bool, typer.Option("--json", help="the dead letter and its redrives as JSON")] = False,
) -> None:
    """One dead letter: where it came from, why, and the original message as it was kept."""

    async def work(conn: asyncpg.Connection, _s: RecoverySettings, _y: dl.Synced) -> dl.StoredDeadLetter:
        return await dl.get(conn, letter_id)

    d = _run(work)
    original, error = d.letter.original, d.letter.error
    if as_json:
        print(json.dumps({"id": d.id, "source": d.source, **d.letter.model_dump(mode="json"),
                          "redrives": d.redrives}, indent=2))  # fmt: skip
        return
    kept = len(d.kept_value())
    lines = [
        ("dead letter", d.id),
        ("received", f"{d.letter.received_at.isoformat()} by {d.source}"),
        ("from", f"{original.topic} partition {original.partition} offset {original.offset}"),
        ("key", original.key if original.key is not None else "(none)"),
        ("reason", f"{error.code}: {error.message}"),
        *(("detail", f"{x.get('loc', '')}: {x.get('msg', '')}") for x in error.details),
        ("length", str(original.value_bytes if original.value_bytes is not None else kept) + " bytes"),
        ("sha256", original.value_sha256 or "(not recorded)"),
        ("kept", f"the first {kept} bytes only (truncated)" if original.truncated else "whole"),
        *(("redriven", f"{r['at']} ({r['how']}) to {r['topic']} partition {r['partition']} offset {r['offset']}")
          for r in d.redrives),
    ]  # fmt: skip
    for label, value in lines:
        console.print(Text(f"{label:<12} {value}"))
    console.print(Text(f"original ({original.value_encoding}):", style="bold"))
    print(original.value)


@dlq_app.command("redrive")
def redrive(
    letter_id: Annotated[str, typer.Argument(metavar="ID", help="the dead letter's id (from `dlq list`)")],
    file: Annotated[Path | None, typer.Option("--file", help="the fixed message (a CloudEvent as JSON)")] = None,
    as_is: Annotated[bool, typer.Option("--as-is", help="the original message, as it was kept")] = False,
    force: Annotated[bool, typer.Option(help="send it even though it was redriven before")] = False,
) -> None:
    """Send the message again to its original topic with its original key: fixed (--file)
    or as it was (--as-is, when the dead letter kept it whole). Recorded; a second redrive
    of one dead letter needs --force."""
    if (file is None) == (not as_is):
        raise fail("--file/--as-is: give one: --file FIXED.json or --as-is")
    raw: bytes | None = None
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise fail(f"--file: {exc.strerror}: {file}") from None

    async def work(conn: asyncpg.Connection, settings: RecoverySettings, synced: dl.Synced) -> dict[str, Any]:
        stored = await dl.get(conn, letter_id)
        fixed = dl.fixed_message(raw, stored.letter.original.topic, settings) if raw is not None else None
        producer = make_producer(settings)
        await producer.start()
        try:
            return await dl.redrive(conn, producer, letter_id, fixed=fixed, force=force, topics=synced.topics,
                                    now=datetime.now(UTC))  # fmt: skip
        finally:
            await producer.stop()

    record = _run(work)
    console.print(Text(f"sent {record['how']} to {record['topic']} partition {record['partition']} "
                       f"offset {record['offset']} ({record['bytes']} bytes)"))  # fmt: skip


def _summary(d: dl.StoredDeadLetter) -> dict[str, Any]:
    original, error = d.letter.original, d.letter.error
    return {
        "id": d.id,
        "received_at": d.letter.received_at.isoformat(),
        "source": d.source,
        "topic": original.topic,
        "partition": original.partition,
        "offset": original.offset,
        "key": original.key,
        "code": error.code,
        "message": error.message,
        "value_bytes": original.value_bytes if original.value_bytes is not None else len(d.kept_value()),
        "value_sha256": original.value_sha256,
        "truncated": original.truncated,
        "redriven_at": d.redrives[-1]["at"] if d.redrives else None,
    }

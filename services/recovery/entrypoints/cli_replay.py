"""`recoveryctl replay`: rebuild the read models from the event store, or re-publish stored
events to Kafka (docs/operations.md, "Replay")."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.common.db import connect
from services.common.gc_tuning import tune_for_throughput
from services.recovery.settings import RecoverySettings

replay_app = typer.Typer(help="Rebuild read models or re-publish stored events.", no_args_is_help=True)
console = Console()
PROJECTION_HELP = (
    "cases (with the escalation queue, owners, SLA timers, charge waits), charges or concessions;"
    " repeat for several; all when omitted"
)


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)  # fmt: skip


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/]")
    return typer.Exit(2)


@replay_app.command("rebuild")
def rebuild(
    projection: Annotated[list[str] | None, typer.Option(help=PROJECTION_HELP)] = None,
    restart: Annotated[bool, typer.Option(help="discard an interrupted rebuild instead of resuming it")] = False,
    page_size: Annotated[int, typer.Option(min=1, help="events read and written per checkpoint")] = 5000,
) -> None:
    """Rebuild the read models from the event store into fresh tables and swap them in, as the
    owner of the schema (DATABASE_MIGRATION_URL, else DATABASE_URL). The services keep
    running; an interrupted rebuild resumes where it was checkpointed."""
    from services.recovery.domain.policy import load_policy
    from services.recovery.replay.rebuild import Progress as Step
    from services.recovery.replay.rebuild import Rebuild, RebuildError, parse_projections

    settings = RecoverySettings()
    try:
        chosen = parse_projections(projection)
    except RebuildError as exc:
        raise _fail(str(exc)) from None

    async def go() -> None:
        conn = await connect(settings)
        try:
            head = int(await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))
        finally:
            await conn.close()
        started = time.perf_counter()
        with _bar() as bar:
            task = bar.add_task("rebuilding (global position)", total=head)

            def step(p: Step) -> None:
                bar.update(task, completed=p.position, total=max(head, p.head))

            outcome = await Rebuild(lambda: connect(settings, owner=True), load_policy(settings.recovery_policy_file),
                                    chosen, page_size=page_size, restart=restart, on_page=step).run()  # fmt: skip
        seconds = time.perf_counter() - started
        table = Table(title="Rebuilt and swapped in")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, rows in outcome.rows.items():
            table.add_row(name, f"{rows:,}")
        console.print(table)
        resumed = f", resumed from position {outcome.resumed_from:,}" if outcome.resumed_from else ""
        console.print(f"{outcome.events:,} events folded up to position {outcome.position:,} in {seconds:.1f} s"
                      f"{resumed}; swap took {outcome.swap_attempts} attempt(s)")  # fmt: skip

    try:
        tune_for_throughput()  # a long fold over many live objects: see services/common/gc_tuning.py
        asyncio.run(go())
    except RebuildError as exc:
        raise _fail(str(exc)) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise _fail(f"{exc}: a rebuild creates and swaps tables, so it runs as the owner of the schema;"
                    " set DATABASE_MIGRATION_URL") from None  # fmt: skip


@replay_app.command("publish")
def publish(
    from_: Annotated[str, typer.Option("--from", help="global position or time (2026-11-20, RFC 3339); inclusive")],
    to: Annotated[str | None, typer.Option(help="global position or time; exclusive; unset: up to now")] = None,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="event type; repeat for several; unset: what recovery publishes")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="only this customer's events (the subject)")] = None,
    topic: Annotated[str | None, typer.Option(help="send everything here instead of the contract topics")] = None,
    dry_run: Annotated[bool, typer.Option(help="count what would be sent, per type; send nothing")] = False,
) -> None:
    """Re-publish stored events to Kafka, marked `replay: true` and keyed by customer id like
    the relay, so a consumer that lost them can catch up; consumers with side effects (the
    notifier) do not act on them again."""
    from services.common.kafka import make_producer
    from services.recovery.application import ACCEPTED, REGISTRY
    from services.recovery.replay import publish as replay
    from services.recovery.replay.window import SelectionError, select

    settings = RecoverySettings()
    try:
        selection = select(registry=REGISTRY, inputs=ACCEPTED, types=type_ or (), start=from_, end=to,
                           customer=customer, topic=topic)  # fmt: skip
    except SelectionError as exc:
        raise _fail(str(exc)) from None

    async def go() -> tuple[dict[str, int], replay.Published | None]:
        conn = await connect(settings)
        try:
            counts = await replay.count(conn, selection)
            if dry_run or not counts:
                return counts, None
            producer = make_producer(settings)
            await producer.start()
            try:
                with _bar() as bar:
                    task = bar.add_task("publishing", total=sum(counts.values()))
                    sent = await replay.publish(conn, producer, settings, selection, topic=topic,
                                                on_page=lambda n: bar.advance(task, n))  # fmt: skip
            finally:
                await producer.stop()
            return counts, sent
        finally:
            await conn.close()

    counts, sent = asyncio.run(go())
    table = Table(title="Would be re-published (dry run)" if dry_run else "Re-published")
    for col in ("type", "topic", "events"):
        table.add_column(col, justify="right" if col == "events" else "left")
    done = sent.by_type if sent is not None else counts
    for t, n in done.items():
        table.add_row(t, topic or settings.topic(REGISTRY[t].TOPIC), f"{n:,}")
    table.add_row("total", "", f"{sum(done.values()):,}")
    console.print(table)

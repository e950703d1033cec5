"""`recoveryctl`: the ops command line (dev stack, demo, migrations, topics, cases)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from services.common.clock import system_clock
from services.common.contract.events import DecisionMade
from services.common.settings import SettingsError, describe_settings_error
from services.notifier.queries import Apology, apologies
from services.recovery import queries
from services.recovery.audit import Client
from services.recovery.bootstrap import connected, service_for
from services.recovery.calendars import staffed
from services.recovery.domain.events import DecisionProposed, DecisionRejected
from services.recovery.domain.policy import load_policy
from services.recovery.domain.reference import case_reference
from services.recovery.domain.roster import load_roster
from services.recovery.entrypoints.cli_agents import agents_app
from services.recovery.entrypoints.cli_audit import audit
from services.recovery.entrypoints.cli_customers import customers_app
from services.recovery.entrypoints.cli_dlq import dlq_app
from services.recovery.entrypoints.cli_input import CaseArg, parse_money
from services.recovery.entrypoints.cli_outbox import outbox_app
from services.recovery.entrypoints.cli_output import JSON_HELP, fail, print_cases, print_table, printed_as_json_or_none
from services.recovery.entrypoints.cli_replay import replay_app
from services.recovery.entrypoints.cli_whatif import whatif
from services.recovery.identity import People
from services.recovery.queries import CaseSummary, TimelineEntry
from services.recovery.settings import RecoverySettings

app = typer.Typer(help="Operate the service-recovery system.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
cases_app = typer.Typer(help="Cases and the escalation desk.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(cases_app, name="cases")
app.add_typer(replay_app, name="replay")
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
app.add_typer(agents_app, name="agents")
app.add_typer(customers_app, name="customers")
app.command()(whatif)
app.command()(audit)
console = Console()
T = TypeVar("T")

DataDir = Annotated[Path, typer.Option(help="where the bundled servers keep their data")]


@app.command()
def dev(
    data_dir: DataDir = Path(".local"),
    kafka_port: Annotated[int, typer.Option(help="0 picks a free port")] = 0,
    partitions: int = 3,
    services: Annotated[bool, typer.Option(help="also run both services and an SMTP sink")] = False,
) -> None:
    """Start the local stack (bundled broker + PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS /
    DATABASE_URL are set), create topics, migrate; with --services run everything until Ctrl-C."""
    from services.recovery.entrypoints import devrun

    stack = devrun.bring_up(data_dir, kafka_port or None, partitions)
    try:
        if services:
            devrun.start_smtp_sink(stack, data_dir)
            devrun.start_services(stack, data_dir)
        devrun.announce(stack, data_dir, services=services)
        devrun.print_exports(stack)
        console.print("\n[green]Running.[/] Press Ctrl-C to stop everything.")
        devrun.wait_until_stopped(stack)
    finally:
        console.print("Stopping...")
        stack.stop()
        console.print("Stopped.")


@app.command()
def demo(
    data_dir: DataDir = Path(".local"),
    partitions: int = 3,
) -> None:
    """Play the customer stories and print what was decided: through the stack `recoveryctl dev`
    runs on DATA_DIR if there is one, else through a stack and services started for the demo."""
    from services.recovery.entrypoints import demo as demo_mod

    demo_mod.run(data_dir, partitions, console)


@app.command()
def migrate(
    grant_login: Annotated[
        bool,
        typer.Option(
            "--grant-login",
            help="also let DATABASE_URL's user log in with its password and hold the services' privileges"
            " (made if missing; needs CREATEROLE)",
        ),
    ] = False,
) -> None:
    """Apply the database migrations as the owner of the schema (DATABASE_MIGRATION_URL, else
    DATABASE_URL)."""
    from services.common.db import connect, dsn_login
    from services.common.migrate import MigrationError
    from services.common.migrate import grant_login as grant
    from services.common.migrate import migrate as run_migrations

    settings = RecoverySettings()

    async def go() -> list[str]:
        conn = await connect(settings, owner=True)
        try:
            applied = await run_migrations(conn)
            if grant_login:
                await grant(conn, *dsn_login(settings.database_dsn()))
            return applied
        finally:
            await conn.close()

    try:
        applied = asyncio.run(go())
    except MigrationError as exc:
        console.print(f"[red]{exc}[/]")
        raise SystemExit(2) from None
    console.print(f"applied: {', '.join(applied) if applied else 'nothing, already current'}")


@topics_app.command("create")
def topics_create() -> None:
    """Create the contract's topics (TOPIC_PARTITIONS partitions each) where missing."""
    from services.common.kafka import create_topics

    created = asyncio.run(create_topics(RecoverySettings()))
    console.print(f"created: {', '.join(created) if created else 'nothing, all exist'}")


@cases_app.command("list")
def cases_list(
    all_: Annotated[bool, typer.Option("--all", help="every case, not only escalations")] = False,
    sort: Annotated[
        queries.CaseOrder,
        typer.Option(help="urgency: most urgent first; time-left: least time left on the person's calendar first"),
    ] = "urgency",
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Open escalations, most urgent first (or every case with --all)."""

    async def go() -> list[CaseSummary]:
        settings = RecoverySettings()
        policy = load_policy(settings.recovery_policy_file)
        roster = staffed(load_roster(settings.recovery_roster_file), policy)
        async with connected(settings) as pool:
            return await queries.by_urgency(pool, 500, escalated_only=not all_, order=sort, now=system_clock(),
                                            calendars=roster.calendar)  # fmt: skip

    print_cases(asyncio.run(go()), "Escalations" if not all_ else "Cases", as_json)


@cases_app.command("approvals")
def cases_approvals(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Agents' decisions waiting for a supervisor's approval, oldest first."""

    async def go() -> list[queries.PendingDecision]:
        async with connected(RecoverySettings()) as pool:
            return await queries.pending_decisions(pool, 500)

    found = asyncio.run(go())
    if printed_as_json_or_none(as_json, [p.model_dump(mode="json") for p in found], "no decisions await approval"):
        return
    rows = [[p.case_id, p.reference, p.proposed_by, p.proposed_at.isoformat(timespec="minutes"),
             str(p.needs_approval.get("text", "-")), _remedies_text(p.remedies) or "decline"]
            for p in found]  # fmt: skip
    columns = ("case", "reference", "proposed by", "at", "why approval", "remedies")
    print_table("Awaiting approval, oldest first", columns, rows, ids={"case", "reference", "proposed by", "at"})


@cases_app.command("show")
def cases_show(case: CaseArg) -> None:
    """The case's timeline: every event on it, and whether the apology reached the customer."""

    async def go() -> tuple[str, list[TimelineEntry], list[Apology], list[str]]:
        async with connected(RecoverySettings()) as pool:
            case_id = await queries.resolve_case_id(pool, case)
            events = await queries.timeline(pool, case_id)
            return case_id, events, await apologies(pool, case_id), await queries.trace_ids(pool, case_id)

    case_id, events, mails, traces = _as_person(go)
    if not events:
        console.print(Text(f"no case {case}", style="red"), soft_wrap=True)
        raise typer.Exit(1)
    console.print(Text(f"case {case_id}  reference {case_reference(case_id)}"), soft_wrap=True)
    # The trace to look up in the tracing backend: the complaint's, through every service.
    console.print(Text(f"trace id {traces[0] if traces else '(none)'}"), soft_wrap=True)
    if len(traces) > 1:
        console.print(Text(f"later traces {', '.join(traces[1:])}"), soft_wrap=True)
    rows = [[str(e.version), e.time.isoformat(timespec="seconds"), e.type, _summary(e.type, e.data)] for e in events]
    print_table(f"Case {case_reference(case_id)}", ("#", "when", "event", "details"), rows, ids={"when", "event"})
    for m in mails:
        line = f"apology [{m.template}]: {m.status}" + (f" ({m.error})" if m.error else "")
        console.print(line, markup=False)  # "[escalation_ack]" is the template's name, not a style


def _summary(kind: str, d: dict[str, Any]) -> str:
    if kind == "recovery.decision.made.v1":
        rem = _remedies_text(d["remedies"])
        return f"{d['outcome']} by {d['decided_by']} ({d['policy']['rule']}): {rem or 'no remedy'}"
    if kind == "recovery.case.escalated.v1":
        return f"{d['priority']} to {d['assignee']}: {d['reason']['text']}"
    if kind == "recovery.case.opened.v1":
        return f"{d['category']}, owner {d['case_owner']['name']}, SLA {d['sla_deadline']}"
    if kind == "recovery.case.contact_added.v1":
        return f"contact {d['contact']} ({d['complaint']['channel']})"
    return ", ".join(f"{k}={v}" for k, v in d.items() if isinstance(v, str | int | bool))[:200]


def _remedies_text(remedies: list[dict[str, Any]]) -> str:
    return ", ".join(f"{x['type']} {x.get('amount') or ''} {x.get('currency') or ''}".strip() for x in remedies)


AS_HELP = "the deciding person's id (`agents list`): enabled, with a role that decides"
SUPERVISOR_HELP = "the supervisor's id (`agents list`): enabled, not the decision's proposer"


@cases_app.command("decide")
def cases_decide(
    case: CaseArg,
    person: Annotated[str, typer.Option("--as", "--agent", help=AS_HELP)],
    refund: Annotated[str | None, typer.Option(help="grant a refund: AMOUNT CURRENCY, e.g. '12.50 USD'")] = None,
    voucher: Annotated[str | None, typer.Option(help="grant a voucher: AMOUNT CURRENCY")] = None,
    replacement: bool = False,
    repair: bool = False,
    cancellation: bool = False,
    decline: Annotated[str | None, typer.Option(help="decline, with this reason for the customer")] = None,
    note: str | None = None,
) -> None:
    """Decide an escalated case as a person: grant remedies or decline with a reason. The
    person must exist, be enabled and hold a role that decides, as on the ops API."""
    from datetime import UTC, datetime, timedelta

    from services.common.contract.events import Reason, Remedy

    try:
        refund_money = parse_money("--refund", refund) if refund is not None else None
        voucher_money = parse_money("--voucher", voucher) if voucher is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    others = [t for t, on in (("replacement", replacement), ("repair", repair), ("cancellation", cancellation)) if on]
    reason = Reason(code="agent_declined", text=decline) if decline else None
    if refund_money is None and voucher_money is None and not others and reason is None:
        raise fail("--refund/--voucher/--replacement/--repair/--cancellation/--decline: grant at least one remedy"
                   " or decline with a reason")  # fmt: skip

    def remedies(case_id: str) -> list[Remedy]:
        granted = [Remedy(type=t) for t in others]
        if voucher_money is not None:
            code, expires = f"AGENT-{case_id[:8].upper()}", datetime.now(UTC) + timedelta(days=365)
            granted.insert(0, Remedy(type="voucher", amount=voucher_money[0], currency=voucher_money[1],
                                     voucher_code=code, expires_at=expires))  # fmt: skip
        if refund_money is not None:
            granted.insert(0, Remedy(type="refund", amount=refund_money[0], currency=refund_money[1],
                                     settlement="3-5 business days"))  # fmt: skip
        return granted

    settings = RecoverySettings()

    async def go() -> DecisionMade | DecisionProposed:
        async with service_for(settings) as svc:
            case_id = await queries.resolve_case_id(svc.pool, case)
            who = await People(svc.pool).acting(person, "decide")
            return await svc.agent_decide(case_id, who.require("decide"), remedies(case_id), reason, note,
                                          role=who.decides_as, client=Client.cli())  # fmt: skip

    decision = _as_person(go)
    if isinstance(decision, DecisionProposed):
        console.print(f"pending approval by a supervisor ({escape(decision.needs_approval.text)}): nothing granted yet")
        return
    console.print(f"decided: {decision.outcome} by {decision.decided_by}, within SLA: {decision.within_sla}")


@cases_app.command("approve")
def cases_approve(case: CaseArg, person: Annotated[str, typer.Option("--as", help=SUPERVISOR_HELP)]) -> None:
    """Approve the case's pending decision (someone else's, four eyes): it takes effect now,
    on the charge's ledger as it is now."""

    async def go() -> DecisionMade:
        async with service_for(RecoverySettings()) as svc:
            case_id = await queries.resolve_case_id(svc.pool, case)
            who = await People(svc.pool).acting(person, "approve")
            return await svc.approve_decision(case_id, who.require("approve"), client=Client.cli())

    made = _as_person(go)
    console.print(f"approved: {made.outcome} by {made.decided_by}, within SLA: {made.within_sla}")


@cases_app.command("reject")
def cases_reject(
    case: CaseArg,
    person: Annotated[str, typer.Option("--as", help=SUPERVISOR_HELP)],
    note: Annotated[str | None, typer.Option(help="why, for the proposer")] = None,
) -> None:
    """Reject the case's pending decision: the case waits for a decision again."""

    async def go() -> DecisionRejected:
        async with service_for(RecoverySettings()) as svc:
            case_id = await queries.resolve_case_id(svc.pool, case)
            who = await People(svc.pool).acting(person, "approve")
            return await svc.reject_decision(case_id, who.require("approve"), note, client=Client.cli())

    rejected = _as_person(go)
    console.print(f"rejected the decision proposed by {rejected.proposed_by}")


def _as_person(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a person's command; what is refused is printed on one line whatever the terminal's
    width, brackets kept (a refused remedy's message names its field: remedies[0].amount)."""
    from services.recovery.errors import CaseNotFound, CommandRejected, ConfigError, RetriesExhausted
    from services.recovery.identity import Forbidden, Unauthenticated

    refused = (CommandRejected, ConfigError, CaseNotFound, RetriesExhausted, Unauthenticated, Forbidden,
               queries.AmbiguousReference)  # fmt: skip
    try:
        return asyncio.run(go())
    except refused as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None


def main() -> None:
    os.environ.setdefault("COLUMNS", "160")
    try:
        app()
    except ValidationError as exc:
        if not exc.title.endswith("Settings"):
            raise
        # A refused setting: one line naming it (never its value), as the services say it.
        raise SettingsError(describe_settings_error(exc)) from None

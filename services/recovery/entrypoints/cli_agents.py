"""`recoveryctl agents`: the people of the built-in issuer (docs/security.md) and their
sign-in tokens, in the database DATABASE_URL names. Each change (add, disable, a token
issued) is audited in its own transaction, as the command line's operator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from services.common.clock import system_clock
from services.recovery.audit import AuditRecord, Client, record
from services.recovery.bootstrap import connected
from services.recovery.entrypoints.cli_output import JSON_HELP, print_table, printed_as_json_or_none
from services.recovery.identity import People, PersonExists, Role, Unauthenticated
from services.recovery.settings import RecoverySettings

agents_app = typer.Typer(help="The people who sign in to the escalation desk (built-in issuer).", no_args_is_help=True)
console = Console()
T = TypeVar("T")
ROLE_HELP = "agent: decides within the approval limits; supervisor: also over them, and approves; auditor: reads"


def _run(work: Callable[[People], Awaitable[T]], audited: Callable[[T], tuple[str, str] | None] | None = None) -> T:
    """``work`` on the people; with ``audited`` (the action and its target to record for
    ``work``'s result, or None for nothing done), in one transaction with its audit record."""

    async def go() -> T:
        async with connected(RecoverySettings()) as pool:
            if audited is None:
                return await work(People(pool))
            async with pool.acquire() as conn, conn.transaction():
                done = await work(People(conn))
                what = audited(done)
                if what is not None:
                    entry = AuditRecord(system_clock(), None, "operator", what[0], Client.cli(), target=what[1])
                    await record(conn, entry)
                return done

    try:
        return asyncio.run(go())
    except (PersonExists, Unauthenticated, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None


@agents_app.command("add")
def agents_add(
    person_id: Annotated[str, typer.Argument(metavar="ID")],
    role: Annotated[Role, typer.Option(help=ROLE_HELP)],
    name: Annotated[str | None, typer.Option(help="the person's name, as the desk shows it")] = None,
) -> None:
    """Add a person with a role."""
    person = _run(
        lambda people: people.add(person_id, role, name), lambda _: ("person.added", f"{person_id} as {role}")
    )
    console.print(f"added {person.id} ({person.role})")


@agents_app.command("list")
def agents_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Every person, enabled or not."""
    found = _run(lambda people: people.all())
    items = [{"id": p.id, "role": p.role, "name": p.name, "enabled": p.enabled} for p in found]
    if printed_as_json_or_none(as_json, items, "no people"):
        return
    rows = [[p.id, p.role, p.name or "-", "yes" if p.enabled else "no"] for p in found]
    print_table("People", ("id", "role", "name", "enabled"), rows, ids={"id"})


@agents_app.command("disable")
def agents_disable(person_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Disable a person: their tokens stop working at once."""
    audited = ("person.disabled", person_id)
    if not _run(lambda people: people.disable(person_id), lambda done: audited if done else None):
        console.print(f"[red]no person {escape(person_id)}[/]")
        raise typer.Exit(1)
    console.print(f"disabled {person_id}")


@agents_app.command("token")
def agents_token(person_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Issue a sign-in token for an enabled person (printed once; only its digest is kept):
    `Authorization: Bearer <token>` on the ops API."""
    token = _run(lambda people: people.issue_token(person_id), lambda _: ("person.token_issued", person_id))
    typer.echo(token)  # alone on stdout, for a script to take

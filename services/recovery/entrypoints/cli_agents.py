"""`recoveryctl agents`: the people of the built-in issuer (docs/security.md) and their
sign-in tokens, in the database DATABASE_URL names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.recovery.bootstrap import connected
from services.recovery.identity import People, PersonExists, Role, Unauthenticated
from services.recovery.settings import RecoverySettings

agents_app = typer.Typer(help="The people who sign in to the escalation desk (built-in issuer).", no_args_is_help=True)
console = Console()
T = TypeVar("T")
ROLE_HELP = "agent: decides within the approval limits; supervisor: also over them, and approves; auditor: reads"


def _run(work: Callable[[People], Awaitable[T]]) -> T:
    async def go() -> T:
        async with connected(RecoverySettings()) as pool:
            return await work(People(pool))

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
    person = _run(lambda people: people.add(person_id, role, name))
    console.print(f"added {person.id} ({person.role})")


@agents_app.command("list")
def agents_list() -> None:
    """Every person, enabled or not."""
    table = Table(title="People")
    for col in ("id", "role", "name", "enabled"):
        table.add_column(col)
    for p in _run(lambda people: people.all()):
        table.add_row(p.id, p.role, p.name or "-", "yes" if p.enabled else "no")
    console.print(table)


@agents_app.command("disable")
def agents_disable(person_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Disable a person: their tokens stop working at once."""
    if not _run(lambda people: people.disable(person_id)):
        console.print(f"[red]no person {escape(person_id)}[/]")
        raise typer.Exit(1)
    console.print(f"disabled {person_id}")


@agents_app.command("token")
def agents_token(person_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Issue a sign-in token for an enabled person (printed once; only its digest is kept):
    `Authorization: Bearer <token>` on the ops API."""
    token = _run(lambda people: people.issue_token(person_id))
    typer.echo(token)  # alone on stdout, for a script to take

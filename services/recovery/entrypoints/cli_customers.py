"""`recoveryctl customers`: forgetting a customer (right to erasure), in the database
DATABASE_URL names, as the command line's operator (audited). See services/recovery/erasure.py
and docs/security.md."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from services.common.clock import system_clock
from services.recovery.audit import Client
from services.recovery.bootstrap import connected
from services.recovery.erasure import Erasure, forget
from services.recovery.settings import RecoverySettings

customers_app = typer.Typer(help="Customers' personal data: erasure.", no_args_is_help=True)
console = Console()


@customers_app.command("forget")
def customers_forget(customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER_ID")]) -> None:
    """Forget a customer: destroy their data key, purge the plain copies of their personal
    data, and record the erasure. Their cases keep their decisions and money; names, emails
    and texts read as [erased]. Running it again changes nothing."""

    async def go() -> Erasure:
        async with connected(RecoverySettings()) as pool:
            return await forget(pool, customer_id, person=None, role="operator", client=Client.cli(),
                                now=system_clock())  # fmt: skip

    try:
        done = asyncio.run(go())
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    who = escape(customer_id)
    if not done.recorded:
        console.print(f"customer {who} was forgotten already (at {done.erased_at:%Y-%m-%d %H:%M:%S %Z}); nothing left")
        return
    purged = ", ".join(f"{n} {table}" for table, n in sorted(done.purged.items())) or "nothing"
    key = "key destroyed" if done.key_destroyed else "no key held"
    console.print(f"customer {who} forgotten: {key}; {done.cases} case(s) now read as erased; purged {purged}")

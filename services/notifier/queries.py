"""The notifier's read side: what the rest of the system may ask about its emails. Other
services read the notifier's tables only through here."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

NOT_SENT_ERASED = "not sent: the customer was forgotten"
"""The error of a ``failed`` apology that was never sent: it was addressed to a customer
forgotten before it was written (no personal data in it)."""


class Apology(BaseModel):
    """The notifier's record of an apology email for a case."""

    template: str
    status: str
    error: str | None = None
    updated_at: datetime


async def apologies(db: asyncpg.Pool | asyncpg.Connection, case_id: str) -> list[Apology]:
    """The apology emails requested for the case, by when their status last changed (none
    while the notifier has not yet migrated this database)."""
    if not await db.fetchval("SELECT to_regclass('notifications') IS NOT NULL"):
        return []
    rows = await db.fetch(
        "SELECT template, status, error, updated_at FROM notifications WHERE case_id = $1 ORDER BY updated_at",
        case_id,
    )
    return [Apology(**dict(r)) for r in rows]

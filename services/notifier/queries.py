"""The notifier's read side: what the rest of the system may ask about its emails, and the
purge of a forgotten customer's copies. Other services read the notifier's tables only
through here."""

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


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


async def forget_apologies(conn: asyncpg.Connection, case_ids: list[str]) -> dict[str, int]:
    """Purge the plain copies of the apologies of ``case_ids`` (a forgotten customer's cases,
    within the caller's transaction), by table: the email request a delivery worker holds
    while it sends it (the row itself, its status and attempts, stays; one still being sent
    is dropped) and the delivery error texts (scrubbed already; cleared all the same), but not
    :data:`NOT_SENT_ERASED`, which is no copy of anything."""
    notifications = [
        r[0] for r in await conn.fetch("SELECT notification_id FROM notifications WHERE case_id = ANY($1)", case_ids)
    ]
    dropped = await conn.execute(
        "DELETE FROM deliveries WHERE notification_id = ANY($1) AND status = 'sending'", notifications
    )
    cleared = await conn.execute(
        "UPDATE deliveries SET request = NULL, error = NULL WHERE notification_id = ANY($1)"
        " AND (request IS NOT NULL OR error IS NOT NULL)",
        notifications,
    )
    errors = await conn.execute(
        "UPDATE notifications SET error = NULL WHERE notification_id = ANY($1) AND error IS NOT NULL AND error <> $2",
        notifications,
        NOT_SENT_ERASED,
    )
    return {"deliveries": _count(dropped) + _count(cleared), "notifications": _count(errors)}

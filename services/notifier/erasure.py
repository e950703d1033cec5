"""The notifier's part of forgetting a customer: the plain copies of personal data it keeps
outside the event store. Called by the recovery service's erasure (services/recovery/erasure.py)
inside its transaction, so the notifier's tables stay the notifier's to write."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


def rows_touched(status: str) -> int:
    """Rows touched, from a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


async def purge_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> dict[str, int]:
    """Purge what the notifier keeps of these cases' emails: the request a delivery worker holds
    while it sends (a delivery still being sent is dropped; the row, its status and attempts
    stay otherwise) and the delivery error texts. Rows touched, by table."""
    notifications = [
        r[0]
        for r in await conn.fetch("SELECT notification_id FROM notifications WHERE case_id = ANY($1)", list(case_ids))
    ]
    deliveries = rows_touched(
        await conn.execute(
            "DELETE FROM deliveries WHERE notification_id = ANY($1) AND status = 'sending'", notifications
        )
    ) + rows_touched(
        await conn.execute(
            "UPDATE deliveries SET request = NULL, error = NULL WHERE notification_id = ANY($1)"
            " AND (request IS NOT NULL OR error IS NOT NULL)",
            notifications,
        )
    )
    errors = rows_touched(
        await conn.execute(
            "UPDATE notifications SET error = NULL WHERE notification_id = ANY($1) AND error IS NOT NULL",
            notifications,
        )
    )
    return {"deliveries": deliveries, "notifications": errors}

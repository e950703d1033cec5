"""Retention of the records of finished emails (``NOTIFICATION_RETENTION_DAYS``).

The rendered email (the address, the subject, the text) is kept in the ``deliveries`` row's
``request`` only while the email is in flight: recording the outcome drops it. What the row
keeps after that, the attempts and the mail server's last reply, guards against sending a
redelivered request again; ``NOTIFICATION_RETENTION_DAYS`` after the outcome (delivered, or
failed for good), when the topic no longer holds the request, the row is deleted.

Kept: the notifier's ``notifications`` row, one per email with its case, template, outcome,
redacted error and timestamps, which holds no address or text and is what
``recoveryctl cases show`` and the ops API report (:mod:`services.notifier.queries`). The
rendered email also lives in the notifier's event store (``EmailRequested`` on
``notification-<id>``): events are immutable and are not touched here.

The delivery worker prunes at start and then hourly, ``BATCH`` rows per statement (each its
own transaction), oldest first; workers pruning at once skip each other's rows. The cut-off
comes from the process's clock, as the outcome's time did.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from services.common.clock import Clock
from services.common.logging import get_logger
from services.common.periodic import every
from services.notifier import metrics

log = get_logger(__name__)

BATCH = 1000


async def prune_deliveries(pool: asyncpg.Pool, before: datetime, batch: int = BATCH) -> int:
    """Delete the delivery rows whose outcome was recorded before ``before``, ``batch`` per
    statement; return how many. A row still ``sending`` is never touched."""
    total = 0
    while True:
        n: int = await pool.fetchval(
            "WITH gone AS (DELETE FROM deliveries WHERE notification_id = ANY(ARRAY("
            " SELECT notification_id FROM deliveries WHERE status <> 'sending' AND updated_at < $1"
            " ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING 1) SELECT count(*) FROM gone",
            before, batch,
        )  # fmt: skip
        total += n
        if n < batch:
            return total


async def prune_every(pool: asyncpg.Pool, days: int, clock: Clock, interval_s: float, stop: asyncio.Event) -> None:
    """:func:`prune_deliveries` of the rows older than ``days`` at start and every
    ``interval_s`` until ``stop`` is set, counted in ``notifier_deliveries_pruned_total``."""

    async def once() -> None:
        n = await prune_deliveries(pool, clock() - timedelta(days=days))
        metrics.DELIVERIES_PRUNED.inc(n)
        if n:
            log.info("deliveries.pruned", rows=n, older_than_days=days)

    # A round that fails leaves the rows for the next one.
    await every(stop, interval_s, once, failed="deliveries.prune_failed")

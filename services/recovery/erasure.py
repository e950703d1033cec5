"""Forgetting a customer (right to erasure) by crypto-shredding.

The customer's personal data in the event store is sealed under their key
(``services/common/eventstore/shred.py``); the events themselves are append-only. Forgetting
destroys the key, so those events read as erased from then on, and purges the plain copies
kept in PostgreSQL outside the store:

- ``deliveries`` and ``notifications``, the notifier's tables, through
  :func:`services.notifier.queries.forget_apologies`: the email request a delivery worker
  holds while it sends it and the delivery error texts;
- ``dead_letters``: every dead letter whose raw record names the customer's id;
- ``outbox_parked``: the messages refused by the broker, keyed by the customer's id.

Then it records a ``recovery.customer.erased.v1`` event (ids and counts only) on the
customer's stream and an audit record, in the same transaction. Forgetting again finds no
key and nothing to purge, and records nothing new: it is idempotent. The read models hold
ids, statuses and money only: they keep what decisions and the guardrail need.

What stays outside PostgreSQL (Kafka topics, backups) is in docs/security.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.common.eventstore import ANY_VERSION, AppendRequest, NewEvent
from services.common.eventstore.postgres import append_on
from services.notifier.queries import forget_apologies
from services.recovery.audit import AuditRecord, Client
from services.recovery.domain.events import CustomerErased

CUSTOMER_PREFIX = "customer-"
MAX_CUSTOMER_ID = 128


def customer_stream(customer_id: str) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


@dataclass(frozen=True)
class Erasure:
    """What forgetting a customer did (nothing, when they were forgotten already)."""

    customer_id: str
    key_destroyed: bool
    cases: int
    purged: dict[str, int] = field(default_factory=dict)
    recorded: bool = False  # an erasure event was appended (false: forgotten already)
    erased_at: datetime | None = None  # the first erasure's time, when one is recorded


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


async def forget(
    db: asyncpg.Pool | asyncpg.Connection,
    customer_id: str,
    *,
    person: str | None,
    role: str,
    client: Client,
    now: datetime,
) -> Erasure:
    """Forget ``customer_id`` in one transaction; see the module's docstring. ``person`` and
    ``role``: who asked (None and ``operator`` for the command line), for the audit trail."""
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID:
        raise ValueError(f"a customer id has 1 to {MAX_CUSTOMER_ID} characters")
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            return await _forget(conn, customer_id, person, role, client, now)
    async with db.transaction():
        return await _forget(db, customer_id, person, role, client, now)


async def _forget(
    conn: asyncpg.Connection, customer_id: str, person: str | None, role: str, client: Client, now: datetime
) -> Erasure:
    destroyed = _count(await conn.execute("DELETE FROM customer_keys WHERE customer_id = $1", customer_id)) > 0
    cases = [r[0] for r in await conn.fetch("SELECT case_id FROM rm_cases WHERE customer_id = $1", customer_id)]
    purged = {
        **await forget_apologies(conn, cases),
        # The id as a JSON string, in the dead letter itself or in the original it quotes.
        "dead_letters": _count(
            await conn.execute(
                "DELETE FROM dead_letters WHERE position(convert_to($1, 'UTF8') IN raw) > 0"
                " OR position(convert_to($2, 'UTF8') IN raw) > 0",
                f'"{customer_id}"',
                f'\\"{customer_id}\\"',
            )
        ),
        "outbox_parked": _count(
            await conn.execute("DELETE FROM outbox_parked WHERE key = convert_to($1, 'UTF8')", customer_id)
        ),
    }
    purged = {k: v for k, v in purged.items() if v}
    stream = customer_stream(customer_id)
    earlier = await conn.fetchval(
        "SELECT occurred_at FROM events WHERE stream_id = $1 AND event_type = $2 ORDER BY version LIMIT 1",
        stream,
        CustomerErased.TYPE,
    )
    if earlier is not None and not destroyed and not purged:
        return Erasure(customer_id, False, len(cases), {}, recorded=False, erased_at=earlier)
    by = f"agent:{person}" if person else role
    event = CustomerErased(customer_id=customer_id, erased_by=by, key_destroyed=destroyed, cases=len(cases),
                           purged=purged, erased_at=now)  # fmt: skip
    entry = AuditRecord(now, person, role, "customer.erased", client, target=customer_id)
    erased = NewEvent(str(uuid.uuid4()), event.TYPE, event.model_dump(mode="json"), now)
    await append_on(conn, [AppendRequest(stream, ANY_VERSION, [erased]), entry.request()])
    return Erasure(customer_id, destroyed, len(cases), purged, recorded=True, erased_at=now)

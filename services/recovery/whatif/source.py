"""Reading the recorded history for a what-if: read-only queries on the event store.

Everything runs in one ``READ ONLY``, ``REPEATABLE READ`` transaction, so PostgreSQL
itself refuses any write and the simulation sees one consistent snapshot even while the
service keeps appending.

Customers' personal data is not opened: every case reads as if its customer had been
forgotten (erased markers, :func:`~services.common.eventstore.shred.read_as_erased`). No
decision reads a name, an email or a text, so the decisions are the ones the live service
made, and the simulated events carry the same markers as the recorded ones they are
compared with (tests/integration/test_whatif.py reproduces a sealed history event for event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from pydantic_core import from_json

from services.common.eventstore.shred import read_as_erased
from services.recovery.domain.guardrail import CONCESSION_RULES
from services.recovery.whatif.outcome import CONTACT_ADDED, DECISION
from services.recovery.whatif.simulate import Recorded, RecordedCase

_WINDOW_STREAMS = f"""
    SELECT stream_id FROM events
     WHERE event_type = '{CONTACT_ADDED}' AND version = 2
       AND ($1::timestamptz IS NULL OR (data->'complaint'->>'filed_at')::timestamptz >= $1)
       AND ($2::timestamptz IS NULL OR (data->'complaint'->>'filed_at')::timestamptz < $2)
"""
_CASE_EVENTS = f"""
    SELECT stream_id, event_type, data::text, coalesce(metadata->>'causationid', event_id),
           occurred_at, global_position
      FROM events WHERE stream_id IN ({_WINDOW_STREAMS})
     ORDER BY stream_id, version
"""
_PRIOR_CONCESSIONS = f"""
    SELECT data->'customer'->>'id', (data->>'decided_at')::timestamptz FROM events
     WHERE event_type = '{DECISION}' AND ($1::timestamptz IS NULL OR occurred_at >= $1)
       AND data->>'decided_by' = 'policy' AND data->>'outcome' = 'resolved'
       AND jsonb_array_length(data->'remedies') > 0
       AND data->'policy'->>'rule' = ANY($2::text[])
       AND stream_id NOT IN ({_WINDOW_STREAMS.replace("$1", "$3").replace("$2", "$4")})
"""


@dataclass(frozen=True)
class History:
    """What a what-if reads: the window's cases, the concessions before, and the horizon."""

    cases: list[RecordedCase]
    prior_concessions: dict[str, list[datetime]]
    horizon: datetime | None
    events_read: int


async def count_window(conn: asyncpg.Connection, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """How many cases were opened by a complaint filed in the window, and their complaints."""
    row = await conn.fetchrow(
        f"SELECT count(DISTINCT stream_id), count(*) FROM events"
        f" WHERE event_type = '{CONTACT_ADDED}' AND stream_id IN ({_WINDOW_STREAMS})",
        since,
        until,
    )
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


async def read_history(
    conn: asyncpg.Connection,
    since: datetime | None,
    until: datetime | None,
    guardrail_days: int,
    progress: Callable[[int], None] | None = None,
) -> History:
    """The cases opened by complaints filed in [since, until), each with its whole stream,
    and the automatic concessions of the same customers outside them (for the guardrail)."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        # The service's own clock: case events carry the time it decided at (charge events
        # carry the billing system's time, which says nothing about how far the service got).
        horizon: datetime | None = await conn.fetchval(
            "SELECT max(occurred_at) FROM events WHERE stream_id LIKE 'case-%'"
        )
        cases: list[RecordedCase] = []
        stream: str | None = None
        events: list[Recorded] = []
        read = 0
        async for r in conn.cursor(_CASE_EVENTS, since, until, prefetch=5000):
            if r[0] != stream:
                if stream is not None:
                    cases.append(RecordedCase(stream.removeprefix("case-"), tuple(events)))
                    if progress is not None:
                        progress(1)
                stream, events = r[0], []
            events.append(Recorded(r[1], from_json(r[2]), r[4], r[3], r[5]))
            read += 1
        if stream is not None:
            cases.append(RecordedCase(stream.removeprefix("case-"), tuple(events)))
            if progress is not None:
                progress(1)
        read_as_erased(e.data for c in cases for e in c.events)
        customers = {str(c.events[0].data["customer_id"]) for c in cases if c.events}
        prior = await _prior_concessions(conn, since, until, guardrail_days, customers)
    return History(cases, prior, horizon, read)


async def _prior_concessions(
    conn: asyncpg.Connection,
    since: datetime | None,
    until: datetime | None,
    guardrail_days: int,
    customers: set[str],
) -> dict[str, list[datetime]]:
    if not customers or (since is None and until is None):
        return {}  # every case is in the window: the simulation makes every concession
    start = since - timedelta(days=guardrail_days + 1) if since is not None else None
    rows = await conn.fetch(_PRIOR_CONCESSIONS, start, sorted(CONCESSION_RULES), since, until)
    out: dict[str, list[datetime]] = {}
    for customer, decided_at in rows:
        if customer in customers:
            out.setdefault(customer, []).append(decided_at)
    return out

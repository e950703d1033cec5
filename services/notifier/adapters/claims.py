"""The delivery worker's claims on emails, in the ``deliveries`` table (PostgreSQL).

A row is ``sending`` while one worker holds the email: ``claim_id`` names that holding and
``claimed_until`` is its lease, which the holder extends while it works. A row is written
once per notification id (``ON CONFLICT DO NOTHING``), so a redelivered request finds its
email claimed or done and is not sent again. A claim whose lease ran out (its worker died)
is taken over with ``FOR UPDATE SKIP LOCKED`` and a new ``claim_id``, so two workers never
take the same one and the old holder, if it still runs, learns that it lost it.

Lease times are the database's (``now()``): every worker compares against one clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.contract import CloudEvent, encode
from services.common.contract.events import EmailRequested


@dataclass(frozen=True, slots=True)
class Claim:
    """One email this worker holds: the request's CloudEvent and the holding's id."""

    claim_id: uuid.UUID
    request: CloudEvent

    @property
    def email(self) -> EmailRequested:
        return EmailRequested.model_validate(self.request.data)

    @property
    def notification_id(self) -> str:
        return self.email.notification_id


def _claims(rows: Sequence[asyncpg.Record]) -> list[Claim]:
    return [Claim(r["claim_id"], CloudEvent.model_validate_json(r["request"])) for r in rows]


async def claim_new(
    conn: asyncpg.Connection, requests: dict[str, CloudEvent], lease_s: float, now: datetime
) -> list[Claim]:
    """Claim the requests (by notification id) that have no row yet; return those claimed."""
    if not requests:
        return []
    rows = await conn.fetch(
        "INSERT INTO deliveries (notification_id, status, request, claim_id, claimed_until, updated_at)"
        " SELECT n, 'sending', r::jsonb, gen_random_uuid(), now() + make_interval(secs => $3), $4"
        " FROM unnest($1::text[], $2::text[]) AS t(n, r)"
        " ON CONFLICT DO NOTHING RETURNING claim_id, request",
        list(requests), [encode(e).decode() for e in requests.values()], lease_s, now,
    )  # fmt: skip
    return _claims(rows)


async def renew(pool: asyncpg.Pool, claim_ids: Sequence[uuid.UUID], lease_s: float) -> set[uuid.UUID]:
    """Extend the leases of ``claim_ids``; return those still held (the others were taken over)."""
    if not claim_ids:
        return set()
    rows = await pool.fetch(
        "UPDATE deliveries SET claimed_until = now() + make_interval(secs => $2)"
        " WHERE claim_id = ANY($1::uuid[]) AND status = 'sending' RETURNING claim_id",
        list(claim_ids), lease_s,
    )  # fmt: skip
    return {r[0] for r in rows}


async def take_expired(
    pool: asyncpg.Pool, lease_s: float, *, skip: Sequence[str] = (), limit: int = 100
) -> list[Claim]:
    """Take over claims whose lease ran out (except the notification ids in ``skip``)."""
    rows = await pool.fetch(
        "UPDATE deliveries d SET claim_id = gen_random_uuid(), claimed_until = now() + make_interval(secs => $1)"
        " FROM (SELECT notification_id FROM deliveries"
        "       WHERE status = 'sending' AND claimed_until < now() AND NOT (notification_id = ANY($2::text[]))"
        "       ORDER BY claimed_until LIMIT $3 FOR UPDATE SKIP LOCKED) expired"
        " WHERE d.notification_id = expired.notification_id RETURNING d.claim_id, d.request",
        lease_s, list(skip), limit,
    )  # fmt: skip
    return _claims(rows)


async def finish(
    conn: asyncpg.Connection, claim: Claim, *, status: str, attempts: int, error: str | None, now: datetime
) -> bool:
    """Record the outcome of a claim still held; False if it was not (nothing written).

    The request is dropped with the claim: the row keeps no personal data once the email
    is done with.
    """
    done = await conn.fetchval(
        "UPDATE deliveries SET status = $2, attempts = attempts + $3, error = $4, updated_at = $5,"
        " request = NULL, claim_id = NULL, claimed_until = NULL"
        " WHERE notification_id = $1 AND status = 'sending' AND claim_id = $6 RETURNING true",
        claim.notification_id, status, attempts, error, now, claim.claim_id,
    )  # fmt: skip
    return bool(done)


async def release(pool: asyncpg.Pool, claim_ids: Sequence[uuid.UUID]) -> int:
    """End the leases of ``claim_ids`` now, so the next sweep (of any worker) takes them."""
    if not claim_ids:
        return 0
    rows = await pool.fetch(
        "UPDATE deliveries SET claimed_until = now()"
        " WHERE claim_id = ANY($1::uuid[]) AND status = 'sending' RETURNING claim_id",
        list(claim_ids),
    )  # fmt: skip
    return len(rows)

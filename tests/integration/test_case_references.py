"""Case references on real PostgreSQL: the index of migration 0107 computes the key the
domain derives, a reference finds its case, and one that two cases share finds neither."""

from __future__ import annotations

import asyncpg
import pytest

from services.recovery import queries
from services.recovery.domain.reference import case_reference, reference_key, spell

IDS = [f"{n:08x}-f378-5773-ab31-f242fb416a41" for n in range(300)] + ["case-1", "", "caso-ñandú-東京", "a\x1fb"]


async def _add_case(db: asyncpg.Pool, case_id: str) -> None:
    await db.execute(
        "INSERT INTO rm_cases (case_id, customer_id, complaint_id, category, status, owner_id, sla_deadline,"
        " opened_at, updated_at, version) VALUES ($1, 'c', 'cmp', 'other', 'escalated', 'o', now(), now(), now(), 1)",
        case_id,
    )


async def every_case_has_key_7(db: asyncpg.Pool) -> None:
    """Make every case's reference ``spell(7)``: no two real ids are known to share a key
    (finding two is a search of 2^28 hashes)."""
    await db.execute(
        "CREATE OR REPLACE FUNCTION rm_case_reference_key(case_id text) RETURNS bigint"
        " LANGUAGE sql IMMUTABLE AS $$ SELECT 7::bigint $$"
    )
    await db.execute("REINDEX INDEX rm_cases_reference_idx")


async def test_the_database_computes_the_key_the_domain_derives(pool: asyncpg.Pool) -> None:
    keys = await pool.fetch("SELECT id, rm_case_reference_key(id) AS key FROM unnest($1::text[]) AS id", IDS)
    assert {r["id"]: r["key"] for r in keys} == {i: reference_key(i) for i in IDS}


async def test_a_lookup_by_reference_uses_the_index(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        plan = await conn.fetchval("EXPLAIN SELECT case_id FROM rm_cases WHERE rm_case_reference_key(case_id) = 1")
    assert "rm_cases_reference_idx" in plan


async def test_a_reference_names_its_case_however_it_is_typed(pool: asyncpg.Pool) -> None:
    for case_id in IDS[:20]:
        await _add_case(pool, case_id)
    wanted = IDS[7]
    ref = case_reference(wanted)
    for typed in (ref, ref.lower(), ref.replace("-", ""), ref[3:]):
        assert await queries.resolve_case_id(pool, typed) == wanted
    assert await queries.resolve_case_id(pool, wanted) == wanted  # the id itself
    assert await queries.resolve_case_id(pool, "no-such-case") == "no-such-case"
    nobody = case_reference("a case that was never opened")
    assert await queries.resolve_case_id(pool, nobody) == nobody  # for the caller's "no case"
    summary = await queries.case(pool, wanted)
    assert summary is not None
    assert summary.model_dump(mode="json")["reference"] == ref


async def test_a_reference_two_cases_share_is_ambiguous(pool: asyncpg.Pool) -> None:
    await every_case_has_key_7(pool)
    for case_id in ("case-a", "case-b"):
        await _add_case(pool, case_id)
    with pytest.raises(queries.AmbiguousReference) as raised:
        await queries.resolve_case_id(pool, spell(7))
    assert raised.value.case_ids == ["case-a", "case-b"]
    assert "case-a" in str(raised.value)
    assert await queries.resolve_case_id(pool, "case-b") == "case-b"  # the id still tells them apart

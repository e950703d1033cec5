"""The event store is append-only at the database: the services' role (``recovery_app``) may
read and insert events but not change, delete or truncate them; a trigger refuses an UPDATE
or DELETE even by the owner; and the services run as that role, a rebuild's swap included."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from services.common.clock import ManualClock
from services.common.migrate import MigrationError, migrate
from services.common.settings import CommonSettings
from services.recovery.domain.policy import load_policy
from services.recovery.replay.rebuild import Rebuild, parse_projections
from tests.helpers import ROOT, recoveryctl
from tests.infra import Infra, unique, with_database
from tests.replay_world import T0, fire_timers, make_service, play

CHANGES = (
    "UPDATE events SET data = '{}'::jsonb",
    "UPDATE events SET event_type = 'x' WHERE global_position = 1",
    "DELETE FROM events WHERE global_position = 1",
    "DELETE FROM events",
)


async def _played(app_pool: asyncpg.Pool, settings: CommonSettings, tag: str = "a") -> ManualClock:
    """A round of stories decided by the recovery service connected as the services' role."""
    clock = ManualClock(T0)
    service = make_service(app_pool, settings, clock)
    await play(service, clock, tag, 14)
    await fire_timers(service, clock, timedelta(minutes=30), timedelta(minutes=5))
    return clock


async def _events(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await conn.fetch("SELECT * FROM events ORDER BY global_position")]


async def test_the_services_role_reads_and_appends_but_cannot_change_or_delete_an_event(
    app_pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    await _played(app_pool, common_settings)
    async with app_pool.acquire() as conn:
        stored = await _events(conn)
        assert stored
        for statement in (*CHANGES, "TRUNCATE events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement)
        assert await _events(conn) == stored


async def test_the_trigger_refuses_an_update_or_delete_even_by_the_owner(
    app_pool: asyncpg.Pool, pool: asyncpg.Pool, common_settings: CommonSettings
) -> None:
    await _played(app_pool, common_settings)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT relowner::regrole::text FROM pg_class WHERE oid = 'events'::regclass") == (
            await conn.fetchval("SELECT current_user")
        )
        stored = await _events(conn)
        for statement in CHANGES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        # A statement that matches nothing is refused too: the trigger is per statement.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: DELETE"):
            await conn.execute("DELETE FROM events WHERE false")
        assert await _events(conn) == stored


async def test_the_services_keep_running_as_their_role_across_a_rebuild(
    app_pool: asyncpg.Pool, database_url: str, common_settings: CommonSettings
) -> None:
    clock = await _played(app_pool, common_settings)
    before = await app_pool.fetchval("SELECT count(*) FROM rm_cases")
    # The swap drops the live tables and moves new ones in, as the owner: the services'
    # grants come with them.
    conn = await asyncpg.connect(database_url)
    try:
        await Rebuild(lambda: asyncpg.connect(database_url), load_policy(), parse_projections(None)).run()
        assert await conn.fetchval("SELECT has_table_privilege('recovery_app', 'rm_cases', 'UPDATE')")
        assert not await conn.fetchval("SELECT has_table_privilege('recovery_app', 'events', 'UPDATE')")
    finally:
        await conn.close()
    service = make_service(app_pool, common_settings, clock)
    await play(service, clock, "b", 14)
    assert await app_pool.fetchval("SELECT count(*) FROM rm_cases") > before


async def test_a_current_schema_starts_under_the_services_role_a_missing_migration_does_not(
    infra: Infra, app_database_url: str
) -> None:
    conn = await asyncpg.connect(app_database_url)
    try:
        assert await migrate(conn) == []  # what every service does at start: nothing to apply
    finally:
        await conn.close()
    # An empty database, its public schema closed to everybody but its owner (the default
    # since PostgreSQL 15; what a DBA does on older servers).
    name = unique("empty")
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        owner = await asyncpg.connect(with_database(infra.database_url, name))
        try:
            await owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await owner.close()
        app_url = with_database(app_database_url, name)
        conn = await asyncpg.connect(app_url)
        try:
            with pytest.raises(MigrationError, match="DATABASE_MIGRATION_URL"):
                await migrate(conn)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_recoveryctl_migrates_and_rebuilds_as_the_owner_and_says_so_without_it(settings_env: dict[str, str]) -> None:
    env = {**settings_env, "PYTHONPATH": str(ROOT)}  # the code under test, wherever it is checked out
    services_only = {k: v for k, v in env.items() if k != "DATABASE_MIGRATION_URL"}
    refused = recoveryctl(services_only, "replay", "rebuild", code=2)
    assert "permission denied" in refused
    assert "DATABASE_MIGRATION_URL" in refused
    assert "nothing, already current" in recoveryctl(env, "migrate", "--grant-login")
    assert "Rebuilt and swapped in" in recoveryctl(env, "replay", "rebuild")

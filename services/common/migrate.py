"""Plain-SQL migrations, applied in order and recorded in ``schema_migrations``.

Files are ``NNNN_name.sql`` in ``services/common/migrations`` (shared tables) and in each
service's ``migrations`` folder; all are applied in the order of their number, each in its
own transaction, under an advisory lock so that two processes starting together do not race.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_ROOT = Path(__file__).resolve().parent.parent
MIGRATION_DIRS = (
    _ROOT / "common" / "migrations",
    _ROOT / "recovery" / "migrations",
    _ROOT / "notifier" / "migrations",
)
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x5E_C0_7E_12  # any constant shared by every process of this project


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def discover(dirs: tuple[Path, ...] = MIGRATION_DIRS) -> list[Migration]:
    found: dict[int, Migration] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.sql")):
            match = _NAME.match(path.name)
            if not match:
                raise ValueError(f"migration file name {path.name!r} is not NNNN_name.sql")
            version = int(match.group(1))
            if version in found:
                raise ValueError(f"two migrations numbered {version:04d}: {path.name}")
            found[version] = Migration(version, path.stem, path.read_text())
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for m in discover():
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
            applied.append(m.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied

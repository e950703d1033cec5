"""Plain-SQL migrations, applied in order and recorded in ``schema_migrations``.

Files are ``NNNN_name.sql`` in ``services/common/migrations`` (shared tables) and in each
service's ``migrations`` folder; all are applied in the order of their number, each in its
own transaction, under an advisory lock so that two processes starting together do not race.

Migrations run as the owner of the schema (``DATABASE_MIGRATION_URL``). A service connected
as the restricted role (``DATABASE_URL``, a member of ``recovery_app``) only reads what is
applied: on a current schema :func:`migrate` changes nothing, so it may run at every start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
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


class MigrationError(RuntimeError):
    """Migrations are missing and this connection's role may not apply them."""


APP_ROLE = "recovery_app"  # made by 0007_append_only_events: the services' privileges


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            await _run_as_owner(
                conn,
                "schema_migrations",
                """CREATE TABLE schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())""",
            )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for m in discover():
            if m.version in done:
                continue
            async with conn.transaction():
                await _run_as_owner(conn, m.name, m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
            applied.append(m.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied


async def _run_as_owner(conn: asyncpg.Connection, name: str, sql: str) -> None:
    try:
        await conn.execute(sql)
    except asyncpg.InsufficientPrivilegeError as exc:
        user = await conn.fetchval("SELECT current_user")
        raise MigrationError(
            f"migration {name} cannot be applied as {user}: {exc}. Run `recoveryctl migrate` "
            "with DATABASE_MIGRATION_URL naming the owner of the schema"
        ) from exc


async def grant_login(conn: asyncpg.Connection, user: str, password: str | None) -> None:
    """Let ``user`` (the user of the services' ``DATABASE_URL``) log in with ``password``
    and hold the privileges of ``recovery_app``; made if missing.

    Needs a connection that may manage roles (CREATEROLE). The password reaches the server
    as a SCRAM verifier, so it is in no statement a server log could record.
    """
    if user == await conn.fetchval("SELECT current_user"):
        return  # one role for everything: it logs in already
    verifier = scram_verifier(password) if password else None
    statement = await conn.fetchval(
        "SELECT format(CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = $1)"
        " THEN 'ALTER ROLE %I LOGIN' ELSE 'CREATE ROLE %I LOGIN' END"
        " || CASE WHEN $2::text IS NULL THEN '' ELSE ' PASSWORD %L' END, $1, $2::text)",
        user,
        verifier,
    )
    await conn.execute(statement)
    if user != APP_ROLE:
        await conn.execute(await conn.fetchval("SELECT format('GRANT %I TO %I', $1::text, $2::text)", APP_ROLE, user))


def scram_verifier(password: str, *, iterations: int = 4096, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5803, as libpq's
    ``PQencryptPasswordConn`` makes it; a random salt unless one is given)."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"

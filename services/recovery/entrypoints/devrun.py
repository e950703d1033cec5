"""`recoveryctl dev`: the bundled stack (or the servers the environment names), the topics,
the migrations, and optionally the services and an SMTP sink, stopped cleanly on Ctrl-C.

A running `dev` describes itself in ``<data dir>/stack.json`` and holds an exclusive lock
(``flock``) on that file for as long as it lives. ``recoveryctl demo`` reads it to play through
that stack rather than start a second one beside it, and a second ``dev`` on the same data
directory refuses to start. The kernel releases the lock when the process ends, killed or not,
so a file left behind by a dead stack is recognised as such and ignored.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from services.common.db import dsn_login
from services.common.devstack import (
    BundledKafka,
    BundledPostgres,
    StackError,
    free_port,
    local_ops_token,
    local_voucher_secret,
)
from services.common.kafka import create_topics
from services.common.migrate import APP_ROLE, grant_login, migrate
from services.recovery.identity import People, Role
from services.recovery.settings import RecoverySettings

console = Console(stderr=True)

STACK_FILE = "stack.json"


@dataclass
class DevStack:
    env: dict[str, str]
    smtp_port: int | None = None
    # The local voucher secret's file, when the stack made one (recoveryctl needs it to decide).
    voucher_secret: Path | None = None
    # Where the recovery service serves the escalation desk, once it is started.
    desk_url: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exit: ExitStack = field(default_factory=ExitStack)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        self.exit.close()


@dataclass(frozen=True)
class RunningStack:
    """A `recoveryctl dev` running on a data directory, as its stack file describes it."""

    pid: int
    env: dict[str, str]  # what points a client at it: servers, topic names, the SMTP sink
    services: bool  # started with --services: the services and the SMTP sink run too
    maildir: Path
    desk_url: str | None = None  # the escalation desk, when the services run

    def settings(self) -> RecoverySettings:
        return RecoverySettings(**{k.lower(): v for k, v in self.env.items()})  # type: ignore[arg-type]


def find_running(data_dir: Path) -> RunningStack | None:
    """The stack a `recoveryctl dev` runs on ``data_dir``, or None when none does."""
    try:
        fd = os.open(data_dir / STACK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # its process holds the lock: it runs
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read()
        else:
            return None  # nobody holds it: left behind by a stack that died
        try:
            d = json.loads(raw)
            return RunningStack(pid=int(d["pid"]), env={str(k): str(v) for k, v in d["env"].items()},
                                services=bool(d["services"]), maildir=Path(d["maildir"]),
                                desk_url=str(d["desk_url"]) if d.get("desk_url") else None)  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # being written this instant
    finally:
        os.close(fd)


def announce(stack: DevStack, data_dir: Path, *, services: bool) -> None:
    """Describe the stack in ``data_dir/stack.json``, locked until the stack stops.

    The file holds DATABASE_URL, so only its owner may read it. It is removed on a clean stop.
    """
    path = data_dir / STACK_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    for _ in range(20):  # a reader holds a shared lock for an instant while it checks
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        os.close(fd)
        console.print(f"[red]Another stack started on {data_dir} meanwhile[/]: stop one of them.")
        raise SystemExit(2)
    settings = RecoverySettings(**{k.lower(): v for k, v in stack.env.items()})  # type: ignore[arg-type]
    topics = {f"TOPIC_{t.upper()}": settings.topic(t) for t in ("charges", "complaints", "decisions",
                                                                 "notifications", "dlq")}  # fmt: skip
    body = {"pid": os.getpid(), "services": services, "maildir": str((data_dir / "mail").resolve()),
            "desk_url": stack.desk_url, "env": {**stack.env, **topics}}  # fmt: skip
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(body).encode(), 0)

    def withdraw() -> None:
        path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock

    stack.exit.callback(withdraw)


def bring_up(data_dir: Path, kafka_port: int | None, partitions: int) -> DevStack:
    """Start what is missing and return the environment that points at it."""
    running = find_running(data_dir)
    if running is not None:
        console.print(f"[red]A stack already runs on {data_dir}[/] (`recoveryctl dev`, pid {running.pid}): "
                      "stop it first, or choose another --data-dir.")  # fmt: skip
        raise SystemExit(2)
    settings = RecoverySettings()
    stack = DevStack(env={})
    env: dict[str, str] = {"TOPIC_PARTITIONS": str(partitions)}
    try:
        if "kafka_bootstrap_servers" in settings.model_fields_set:
            env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
            console.print(f"Kafka: [bold]{settings.kafka_bootstrap_servers}[/] (from KAFKA_BOOTSTRAP_SERVERS)")
        else:
            kafka = BundledKafka(data_dir / "kafka", kafka_port)
            env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.start()
            stack.exit.callback(kafka.stop)
            # The bundled broker holds first group joins for half the session timeout.
            env.update(KAFKA_SESSION_TIMEOUT_MS="2000", KAFKA_HEARTBEAT_INTERVAL_MS="500")
            console.print(f"Kafka: bundled broker on [bold]{kafka.bootstrap}[/] (memory storage)")
        if "database_url" in settings.model_fields_set:
            env["DATABASE_URL"] = settings.database_dsn()
            if settings.database_migration_url is not None:
                env["DATABASE_MIGRATION_URL"] = settings.database_migration_dsn()
            console.print("PostgreSQL: from DATABASE_URL")
        else:
            # Migrations as the superuser, the services as the restricted role.
            pg = BundledPostgres(data_dir / "pg")
            env["DATABASE_MIGRATION_URL"] = pg.start()
            env["DATABASE_URL"] = pg.url(pg.database, APP_ROLE)
            stack.exit.callback(pg.stop)
            console.print(f"PostgreSQL: bundled server, data in [bold]{pg.data_dir}[/]")
    except StackError as exc:
        stack.exit.close()
        console.print(f"[red]Cannot start the local stack:[/] {exc}")
        raise SystemExit(2) from None
    if "recovery_voucher_secret" not in settings.model_fields_set:
        secret = local_voucher_secret(data_dir)
        env["RECOVERY_VOUCHER_SECRET"] = secret.read_text().strip()
        stack.voucher_secret = secret.resolve()
        console.print(f"Voucher codes: under the local secret in [bold]{secret}[/] (for recoveryctl:"
                      f" export RECOVERY_VOUCHER_SECRET=\"$(cat '{secret}')\")")  # fmt: skip
    if "ops_api_token" not in settings.model_fields_set:
        token = local_ops_token(data_dir)
        env["OPS_API_TOKEN"] = token.read_text().strip()
        console.print(f"Ops API: bearer token in [bold]{token}[/]")
    if "http_docs" not in settings.model_fields_set:
        env["HTTP_DOCS"] = "public"  # the interactive docs on /docs, for this machine's user
    stack.env = env
    merged = RecoverySettings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    asyncio.run(_prepare(merged))
    console.print(f"Topics ready ({partitions} partitions each): {', '.join(merged.all_topics())}")
    for person, bearer in asyncio.run(demo_sign_ins(merged)).items():
        console.print(f"Desk sign-in for [bold]{person}[/]: Authorization: Bearer {bearer}")
    return stack


DEMO_PEOPLE: dict[str, Role] = {"demo-agent": "agent", "demo-supervisor": "supervisor"}


async def demo_sign_ins(settings: RecoverySettings) -> dict[str, str]:
    """A demo agent and a demo supervisor of the built-in issuer (added once), each with a
    fresh sign-in token for the ops API."""
    conn = await asyncpg.connect(settings.database_dsn())
    try:
        people = People(conn)
        for person, role in DEMO_PEOPLE.items():
            if await people.get(person) is None:
                await people.add(person, role, person.replace("-", " ").title())
        return {person: await people.issue_token(person) for person in DEMO_PEOPLE}
    finally:
        await conn.close()


async def _prepare(settings: RecoverySettings) -> None:
    await create_topics(settings)
    conn = await asyncpg.connect(settings.database_migration_dsn())
    try:
        applied = await migrate(conn)
        if settings.database_migration_url is not None:
            await grant_login(conn, *dsn_login(settings.database_dsn()))
    finally:
        await conn.close()
    console.print(f"Migrations applied: {', '.join(applied) if applied else 'already current'}")


def start_smtp_sink(stack: DevStack, data_dir: Path) -> None:
    """A local SMTP server that keeps every email in data_dir/mail/ (one .eml per message)."""
    from aiosmtpd.controller import Controller

    maildir = data_dir / "mail"
    maildir.mkdir(parents=True, exist_ok=True)

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            name = f"{time.time_ns()}.eml"
            (maildir / name).write_bytes(envelope.content)
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    stack.exit.callback(controller.stop)
    stack.smtp_port = port
    stack.env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    console.print(f"SMTP sink: 127.0.0.1:{port}, emails saved in [bold]{maildir}[/]")


def start_services(stack: DevStack, data_dir: Path) -> None:
    """The three services as processes; the recovery service serves HTTP (and the desk) on
    HTTP_PORT (8080), the notifier and the delivery worker on the next two ports (HTTP_PORT=0:
    each on a free one, the recovery service's chosen here so that the desk's address is known)."""
    bindir = Path(sys.executable).parent
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base = RecoverySettings().http_port
    port = [base, base + 1, base + 2] if base else [free_port(), 0, 0]
    plan = [("recovery-service", {"HTTP_PORT": str(port[0])}),
            ("notifier-service", {"HTTP_PORT": str(port[1])}),
            ("delivery-worker", {"DELIVERY_HTTP_PORT": str(port[2])})]  # fmt: skip
    for script, extra in plan:
        exe = bindir / script
        if not exe.exists() and shutil.which(script) is None:
            continue
        if not _importable(script):
            console.print(f"[yellow]{script} is not available in this build; skipped[/]")
            continue
        log = (logs / f"{script}.log").open("ab")
        # The services connect as DATABASE_URL's user; the owner's URL stays with recoveryctl.
        env = {k: v for k, v in {**os.environ, **stack.env, **extra}.items() if k != "DATABASE_MIGRATION_URL"}
        stack.procs.append(
            subprocess.Popen([str(exe)], env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own console script
        )
        log.close()
        console.print(f"Started [bold]{script}[/] (log: {logs / (script + '.log')})")
        if script == "recovery-service":
            stack.desk_url = f"http://127.0.0.1:{port[0]}/desk"


def wait_for_desk(url: str, timeout_s: float = 60) -> bool:
    """Whether the desk's sign-in page answers within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/signin", timeout=2) as answer:  # noqa: S310 - our own http URL
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def wait_until_stopped(stack: DevStack) -> None:
    """Until Ctrl-C (SIGINT) or SIGTERM, or until one of the stack's services exits."""
    stopping = {"now": False}

    def handler(*_: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stopping["now"]:
        for p in stack.procs:
            if p.poll() is not None:
                console.print(f"[red]a service exited with code {p.returncode}; see the logs in the data directory[/]")
                return
        time.sleep(0.5)


def _importable(script: str) -> bool:
    module = {
        "recovery-service": "services.recovery.entrypoints.kafka",
        "notifier-service": "services.notifier.entrypoints.kafka",
        "delivery-worker": "services.notifier.entrypoints.delivery",
    }[script]
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def print_exports(stack: DevStack) -> None:
    console.print("\nPoint a client at it:")
    for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "DATABASE_MIGRATION_URL"):
        if k in stack.env:
            console.print(f"  export {k}='{stack.env[k]}'")
    if stack.voucher_secret is not None:
        console.print(f"  export RECOVERY_VOUCHER_SECRET=\"$(cat '{stack.voucher_secret}')\"")
    if stack.desk_url is not None:
        console.print(f"\nThe escalation desk: {stack.desk_url} (sign in with a token printed above)", soft_wrap=True)

"""Runs benchmarks: servers (bundled unless the environment names them), a fresh migrated
database, progress bars, the results table and bench/results/latest.json."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
import uuid
import warnings
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bench.registry import Benchmark, Context, Row
from services.common.db import create_pool
from services.common.logging import configure_logging
from services.common.settings import CommonSettings

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Measured:
    benchmark: str
    metric: str
    value: float
    unit: str
    note: str


@dataclass
class Servers:
    bootstrap: str
    admin_url: str
    kinds: str


async def start_servers(env: CommonSettings, stack: AsyncExitStack, console: Console) -> Servers:
    """What the environment names, else the bundled broker / PostgreSQL in a temp dir."""
    given = env.model_fields_set
    bootstrap = env.kafka_bootstrap_servers if "kafka_bootstrap_servers" in given else None
    admin_url = env.database_dsn() if "database_url" in given else None
    kinds = ["kafka:environment" if bootstrap else "kafka:bundled"]
    kinds.append("postgres:environment" if admin_url else "postgres:bundled")
    if bootstrap is None or admin_url is None:
        from services.common.devstack import BundledKafka, BundledPostgres

        root = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
        stack.callback(shutil.rmtree, root, True)
        with console.status("starting the bundled servers"):
            if bootstrap is None:
                broker = BundledKafka(root / "kafka")
                bootstrap = broker.start()
                stack.callback(broker.stop)
            if admin_url is None:
                pg = BundledPostgres(root / "pg", database="postgres")
                admin_url = pg.start()
                stack.callback(pg.stop)
    return Servers(bootstrap, admin_url, ",".join(kinds))


async def run_benchmarks(
    selected: list[Benchmark], *, quick: bool, console: Console
) -> tuple[list[Measured], list[str], dict[str, Any]]:
    configure_logging("WARNING")
    # pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset; harmless, and it would
    # scroll the progress bars away.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    env = CommonSettings()
    meta: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "git_commit": _git_commit(),
    }
    measured: list[Measured] = []
    failures: list[str] = []
    async with AsyncExitStack() as stack:
        servers = await start_servers(env, stack, console)
        meta["servers"] = servers.kinds
        settings = env.model_copy(
            update={
                "kafka_bootstrap_servers": servers.bootstrap,
                "database_url": SecretStr(servers.admin_url),
                # The bundled broker holds a group join for half the session timeout.
                "kafka_session_timeout_ms": 2000,
                "kafka_heartbeat_interval_ms": 500,
            }
        )
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        ctx = Context(
            settings=settings,
            pool=None,  # set below, once the database exists
            quick=quick,
            admin_url=servers.admin_url,
            _progress=progress,
        )
        stack.push_async_callback(_drop_databases, ctx)
        url = await ctx.fresh_database()
        ctx.settings = settings.model_copy(update={"database_url": SecretStr(url)})
        # The services' own pool settings (plan cache mode, TLS), as the product runs them.
        ctx.pool = await create_pool(ctx.settings.model_copy(update={"database_pool_min": 2, "database_pool_max": 10}))
        stack.push_async_callback(ctx.pool.close)
        with progress:
            for bench in selected:
                ctx._benchmark = bench.name
                started = time.perf_counter()
                try:
                    rows: list[Row] = await bench.run(ctx)
                except Exception:
                    failures.append(f"{bench.name}: {traceback.format_exc()}")
                    continue
                elapsed = time.perf_counter() - started
                measured.extend(Measured(bench.name, r.metric, r.value, r.unit, r.note) for r in rows)
                measured.append(Measured(bench.name, "wall time", elapsed, "s", ""))
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return measured, failures, meta


async def _drop_databases(ctx: Context) -> None:
    admin = await asyncpg.connect(ctx.admin_url)
    try:
        for name in ctx._databases:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _fmt(value: float, unit: str) -> str:
    if unit == "s" or abs(value) < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def print_table(measured: list[Measured], meta: dict[str, Any], console: Console) -> None:
    table = Table(title="service-recovery benchmarks" + (" (--quick)" if meta["quick"] else ""))
    for column, justify in (("benchmark", "left"), ("metric", "left"), ("value", "right"),
                            ("unit", "left"), ("note", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    previous = None
    for m in measured:
        name = m.benchmark if m.benchmark != previous else ""
        previous = m.benchmark
        table.add_row(name, m.metric, _fmt(m.value, m.unit), m.unit, m.note)
    console.print(table)
    before, after = meta["loadavg_before"], meta["loadavg_after"]
    cpus = meta["cpu_count"]
    console.print(
        f"load average (1, 5, 15 min) before {before}, after {after}; {cpus} CPUs; "
        f"servers: {meta.get('servers')}; commit {meta.get('git_commit')}"
    )
    if max(before[0], after[0]) > 0.5 * (cpus or 1):
        console.print(
            "[yellow]note: the machine was busy (load average above half the CPU count); "
            "other processes share it, so treat these figures as a lower bound[/yellow]"
        )


def write_results(measured: list[Measured], failures: list[str], meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.json"
    doc = {**meta, "results": [asdict(m) for m in measured], "failures": failures}
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path

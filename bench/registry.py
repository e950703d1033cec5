"""The benchmark registry: what a benchmark module provides and what it is given."""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import asyncpg
from rich.progress import Progress, TaskID

from services.common.kafka import create_topics
from services.common.migrate import migrate
from services.common.settings import CommonSettings

NOT_BENCHMARKS = frozenset({"registry", "runner", "results"})


@dataclass(frozen=True)
class Row:
    """One measured figure."""

    metric: str
    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    order: int
    run: Callable[[Context], Awaitable[list[Row]]]
    module: str


def _benchmark(module: ModuleType) -> Benchmark | None:
    name, description, run = (getattr(module, a, None) for a in ("NAME", "DESCRIPTION", "run"))
    if name is None or run is None:
        return None
    return Benchmark(str(name), str(description or ""), int(getattr(module, "ORDER", 100)), run, module.__name__)


def discover(package: str = "bench") -> dict[str, Benchmark]:
    """Every benchmark module in ``package``, by NAME, in ORDER then name."""
    pkg = importlib.import_module(package)
    found: list[Benchmark] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name in NOT_BENCHMARKS:
            continue
        bench = _benchmark(importlib.import_module(f"{package}.{info.name}"))
        if bench is not None:
            found.append(bench)
    names = [b.name for b in found]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"two benchmark modules share a NAME: {sorted(duplicated)}")
    return {b.name: b for b in sorted(found, key=lambda b: (b.order, b.name))}


class Bar:
    """One progress bar; ``advance`` as work gets done."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        self._progress.advance(self._task, n)

    def update(self, completed: float) -> None:
        self._progress.update(self._task, completed=completed)


@dataclass
class Context:
    """What a benchmark is given. The runner owns (and cleans up) everything in here."""

    settings: CommonSettings  # broker + this run's fresh, migrated database
    pool: asyncpg.Pool
    quick: bool
    admin_url: str  # a database on the same server, able to CREATE DATABASE
    _progress: Progress
    _databases: list[str] = field(default_factory=list)
    _benchmark: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @contextmanager
    def progress(self, description: str, total: float | None) -> Iterator[Bar]:
        task = self._progress.add_task(f"{self._benchmark}: {description}", total=total)
        try:
            yield Bar(self._progress, task)
        finally:
            self._progress.update(task, completed=total, visible=True)
            self._progress.stop_task(task)

    async def fresh_database(self) -> str:
        """A new, empty, migrated database (dropped when the run ends); its URL."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self._databases.append(name)
        url = with_database(self.admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return url

    async def topic(self, prefix: str, partitions: int | None = None) -> str:
        """A new topic (``topic_partitions`` partitions unless told), created now."""
        name = f"bench.{prefix}.{uuid.uuid4().hex[:8]}"
        settings = self.settings
        if partitions is not None:
            settings = settings.model_copy(update={"topic_partitions": partitions})
        await create_topics(settings, [name])
        return name


def with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))

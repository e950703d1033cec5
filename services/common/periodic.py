"""Background work that repeats until the process is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.common.logging import get_logger

log = get_logger(__name__)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def every(stop: asyncio.Event, seconds: float, work: Callable[[], Awaitable[object]], *, failed: str) -> None:
    """``work`` at once and then every ``seconds`` until ``stop`` is set. A round that fails is
    logged as ``failed`` (the error's type only: no data in logs) and the next one tries again."""
    while not stop.is_set():
        try:
            await work()
        except Exception as exc:
            log.warning(failed, error=type(exc).__name__)
        await pause(stop, seconds)

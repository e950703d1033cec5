"""Pacing: a long stretch of CPU work hands the event loop back now and then.

With a pipeline (services/common/pipeline.py), the batch ahead holds the append lock while
the next one decides, and every step it takes (rows to encode, a statement's answer to
read) waits for the event loop: a batch deciding for 20 ms at a stretch would hold the
lock's whole queue up. The caller that runs batches side by side hands a :class:`Pacer` to
the work, which awaits it between steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# Work between two looks at the event loop.
SLICE_S = 0.001

Pace = Callable[[], Awaitable[None]]
"""What work awaits between its steps: returns at once, or after handing the loop back."""


class Pacer:
    """Hands the event loop back every ``slice_s`` or so of work."""

    __slots__ = ("_last", "_slice_s")

    def __init__(self, slice_s: float = SLICE_S) -> None:
        self._slice_s = slice_s
        self._last = time.perf_counter()

    async def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._last >= self._slice_s:
            await asyncio.sleep(0)
            self._last = time.perf_counter()


async def unpaced() -> None:
    """Never hands the loop back: for work that nothing runs beside."""

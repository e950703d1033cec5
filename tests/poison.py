"""Poison messages on demand: a service's real batch method, made to raise for any batch
holding one chosen message, as for a value it cannot take. The broker, PostgreSQL and the
rest of the handling stay real. In-process tests patch the method with :func:`poisoned`;
the service processes of the e2e tests get it from :func:`install_from_env` (run by
tests/e2e/poison/sitecustomize.py, put on their PYTHONPATH with TEST_POISON_MARKS set)."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar, cast

from services.common.records import InboundRecord

ENV = "TEST_POISON_MARKS"
POISON_TEXT = "cannot take this message"

Handle = TypeVar("Handle", bound=Callable[..., Awaitable[Any]])


class Poison(ValueError):
    """What a poisoned handler raises: a fault of the message, as a value out of range is."""


def poisoned(handle: Handle, marks: Collection[str], calls: list[list[InboundRecord]] | None = None) -> Handle:
    """``handle`` (a batch method: ``self, records, ...``) raising :class:`Poison` for any
    batch with a record whose value holds one of ``marks`` (an event id, say); ``calls``
    gets every batch it is given."""
    wanted = [m.encode() for m in marks]

    @functools.wraps(handle)
    async def wrapper(self: Any, records: Sequence[InboundRecord], *args: Any, **kwargs: Any) -> Any:
        if calls is not None:
            calls.append(list(records))
        for r in records:
            if r.value is not None and any(m in r.value for m in wanted):
                raise Poison(f"{POISON_TEXT} (offset {r.offset})")
        return await handle(self, records, *args, **kwargs)

    return cast(Handle, wrapper)


def install_from_env() -> None:
    """Poison the batch methods of every consumer for the marks in TEST_POISON_MARKS."""
    marks = [m for m in os.environ.get(ENV, "").split(",") if m]
    if not marks:
        return
    from services.notifier.application import NotifierService
    from services.notifier.worker import DeliveryWorker
    from services.recovery.application import RecoveryService

    RecoveryService.handle_records = poisoned(RecoveryService.handle_records, marks)  # type: ignore[method-assign]
    NotifierService.handle_records = poisoned(NotifierService.handle_records, marks)  # type: ignore[method-assign]
    DeliveryWorker.handle_records = poisoned(DeliveryWorker.handle_records, marks)  # type: ignore[method-assign]

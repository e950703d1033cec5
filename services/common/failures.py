"""Why handling a batch failed: something around the service (transient: the batch is
handled again later, whole, and nothing is dead-lettered) or a message in it (its fault:
the message is isolated and dead-lettered, see :mod:`services.common.isolate`).

Transient:

- :class:`Transient` and its subclasses: the pipeline's ``BatchAbandoned``, a service's
  ``RetriesExhausted`` (lost races after its own retries) and :class:`StoreUnavailable`
  (the adapters' name for a lost or refused database connection, see
  :func:`is_connection_error`);
- PostgreSQL errors of SQLSTATE class 08 (connection), 40 (transaction rollback:
  serialization failure, deadlock), 42 (undefined table, insufficient privilege: a
  deployment error, never one message's), 53 (insufficient resources: too many
  connections, disk full), 55 (lock not available), 57 (operator intervention: query
  canceled, statement timeout, admin shutdown), 58 (system error);
- the PostgreSQL client's own errors about its connection or pool (``InterfaceError``,
  ``InternalClientError``), a lost race on an event stream (``ConcurrencyError``);
- ``OSError`` (a connection refused or reset), ``TimeoutError``, and a Kafka client error
  the client says is worth retrying;
- any error raised *from* one of these (``raise ... from exc``), and an exception group
  holding one.

Everything else is the message's fault: PostgreSQL's classes 22 (data exception) and 23
(integrity), and every other class; ``ValueError``, ``ArithmeticError``,
``RecursionError``, pydantic's ``ValidationError``, a ``KeyError`` from a bug that one
message's content reaches, ...
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from services.common.eventstore import ConcurrencyError
from services.common.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "42", "53", "55", "57", "58"})
# Lost connections, closed pools, outdated statement caches: the client's, not the data's.
_CLIENT_ERRORS = (asyncpg.InterfaceError, asyncpg.exceptions._base.InternalClientError)
_BROKER_ERRORS = (KafkaConnectionError, KafkaTimeoutError)
MAX_REASON = 300  # characters of an exception's text kept in a dead letter


class Transient(RuntimeError):
    """A failure that is no message's fault: the batch is handled again later, whole."""


class StoreUnavailable(Transient):
    """The database could not be reached, or the connection broke: each service's adapters
    raise their own subclass from the client's error."""


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database client's word that the connection is gone or was never
    made (SQLSTATE class 08, the client's own connection errors, a refused or reset socket)."""
    if isinstance(exc, (OSError, *_CLIENT_ERRORS)):
        return True
    return isinstance(exc, asyncpg.PostgresError) and str(getattr(exc, "sqlstate", None) or "").startswith("08")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says nothing about the messages being handled (see the module doc)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_transient(e) for e in exc.exceptions)
    if isinstance(exc, (Transient, ConcurrencyError, TimeoutError, OSError, *_CLIENT_ERRORS, *_BROKER_ERRORS)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", None) or "")[:2] in TRANSIENT_SQLSTATE_CLASSES
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    cause = exc.__cause__
    return cause is not None and is_transient(cause)


def reason(exc: BaseException) -> str:
    """The exception's class and the start of its text, on one line, for a dead letter.

    Bounded: the text may quote the input (a value PostgreSQL refused, pydantic's
    ``input_value``), and a dead letter carries the message once already.
    """
    text = " ".join(str(exc).split())
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Backoff:
    """Exponential delays, capped, with jitter: ``base_s`` doubled after each failure up to
    ``cap_s``, of which a random half is taken off (so instances that failed together do not
    come back together). :meth:`reset` after a success."""

    def __init__(
        self,
        base_s: float,
        cap_s: float,
        *,
        on_retry: Callable[[BaseException], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._on_retry = on_retry
        self._rand = rand

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return ceiling * (1 - self._rand() / 2)

    async def after(self, exc: BaseException) -> None:
        """Count and log a transient failure of a batch, and wait before it is handled again."""
        delay = self.next_delay()
        if self._on_retry is not None:
            self._on_retry(exc)
        log.warning("batch.retry", error=type(exc).__name__, transient=is_transient(exc),
                    failures=self.failures, delay_s=round(delay, 3), exc_info=exc)  # fmt: skip
        await asyncio.sleep(delay)

    def reset(self) -> None:
        self.failures = 0


async def backed_off(work: Awaitable[T], backoff: Backoff) -> T:
    """``work``'s result; if it fails, ``backoff`` waits before the failure is raised (to a
    subscriber that redelivers the batch: NACK_ON_ERROR)."""
    try:
        result = await work
    except Exception as exc:
        await backoff.after(exc)
        raise
    backoff.reset()
    return result

"""The recovery service's errors, one tree: the domain's (``services.recovery.domain.errors``)
and those of the application and its adapters.

::

    RecoveryError                   (domain) anything the recovery service raises on purpose
    ├── ConfigError, InvalidStream, CommandRejected, ...    the domain's, see domain/errors.py
    ├── CaseNotFound                no case with that id (also a LookupError)
    ├── ConcurrencyConflict         another writer changed a stream this transaction read
    │   └── RetriesExhausted        ... again and again, after the application's own retries
    ├── StoreUnavailable            PostgreSQL could not be reached or dropped the connection
    └── StoreRejected               PostgreSQL refused what was written (an integrity error)

``ConcurrencyConflict``, ``RetriesExhausted`` and ``StoreUnavailable`` are transient
(:class:`services.common.failures.Transient`): a batch that meets one is handled again later,
whole. ``StoreRejected`` is the batch's content's: the batch's messages are isolated. The
PostgreSQL adapters (``adapters/``) map asyncpg's errors to these, the original kept as the
cause.
"""

from __future__ import annotations

from services.common import failures
from services.recovery.domain.errors import (
    CaseMismatch,
    CaseNotAwaitingAgent,
    CommandRejected,
    ConfigError,
    InvalidAgentDecision,
    InvalidStream,
    PolicyError,
    RecoveryError,
    RemedyRejected,
    RosterError,
)

__all__ = [
    "CaseMismatch",
    "CaseNotAwaitingAgent",
    "CaseNotFound",
    "CommandRejected",
    "ConcurrencyConflict",
    "ConfigError",
    "InvalidAgentDecision",
    "InvalidStream",
    "PolicyError",
    "RecoveryError",
    "RemedyRejected",
    "RetriesExhausted",
    "RosterError",
    "StoreRejected",
    "StoreUnavailable",
]


class CaseNotFound(RecoveryError, LookupError):
    """No case has that id."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"no case {case_id}")
        self.case_id = case_id


class ConcurrencyConflict(RecoveryError, failures.Transient):
    """Another writer appended to ``stream`` after this transaction read it."""

    def __init__(self, stream: str, message: str | None = None) -> None:
        super().__init__(message or f"stream {stream} changed under this transaction")
        self.stream = stream


class RetriesExhausted(ConcurrencyConflict):
    """The application's own retries of a transaction all lost races with other writers."""


class StoreUnavailable(RecoveryError, failures.StoreUnavailable):
    """PostgreSQL could not be reached, or the connection broke mid-transaction."""


class StoreRejected(RecoveryError):
    """PostgreSQL refused a write as breaking an integrity constraint."""

"""The recovery service's error tree, and asyncpg's errors mapped to it at the adapter."""

from __future__ import annotations

import asyncpg
import pytest

from services.common.eventstore import ConcurrencyError
from services.common.failures import StoreUnavailable as AnyStoreUnavailable
from services.common.failures import is_transient
from services.notifier.errors import NotifierError
from services.notifier.errors import StoreUnavailable as NotifierStoreUnavailable
from services.recovery.adapters.postgres import mapped_errors
from services.recovery.errors import (
    CaseNotFound,
    ConcurrencyConflict,
    RecoveryError,
    RetriesExhausted,
    StoreRejected,
    StoreUnavailable,
)


def _mapped(exc: Exception) -> Exception:
    with pytest.raises(Exception, match=r".*") as raised, mapped_errors():  # whichever it is mapped to
        raise exc
    assert raised.value is exc or raised.value.__cause__ is exc
    return raised.value


def test_a_lost_connection_is_store_unavailable_and_transient() -> None:
    for exc in (asyncpg.ConnectionDoesNotExistError("gone"), ConnectionRefusedError(111, "refused"),
                asyncpg.exceptions.ConnectionFailureError("failed")):  # fmt: skip
        mapped = _mapped(exc)
        assert isinstance(mapped, StoreUnavailable)
        assert isinstance(mapped, AnyStoreUnavailable)
        assert is_transient(mapped)


def test_a_lost_race_or_a_unique_key_taken_meanwhile_is_a_concurrency_conflict() -> None:
    lost = _mapped(ConcurrencyError("case-1", 1, 2))
    assert isinstance(lost, ConcurrencyConflict)
    assert lost.stream == "case-1"
    assert isinstance(_mapped(asyncpg.UniqueViolationError("duplicate key")), ConcurrencyConflict)
    assert is_transient(lost)


def test_any_other_integrity_error_is_the_batchs_own() -> None:
    mapped = _mapped(asyncpg.NotNullViolationError("null value"))
    assert isinstance(mapped, StoreRejected)
    assert not is_transient(mapped)


def test_other_errors_pass_through_unchanged() -> None:
    for exc in (ValueError("bad"), asyncpg.DataError("bad value"), CaseNotFound("c-1")):
        assert _mapped(exc) is exc


def test_the_tree() -> None:
    assert issubclass(CaseNotFound, RecoveryError)
    assert issubclass(CaseNotFound, LookupError)
    assert issubclass(RetriesExhausted, ConcurrencyConflict)
    assert is_transient(RetriesExhausted("case-1"))
    assert issubclass(NotifierStoreUnavailable, NotifierError)
    assert is_transient(NotifierStoreUnavailable("gone"))

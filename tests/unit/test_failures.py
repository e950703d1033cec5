"""Which failures are transient (the batch is handled again later, nothing dead-lettered)
and which are a message's fault (it is isolated and dead-lettered), and the backoff."""

from __future__ import annotations

import decimal

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError, NodeNotReadyError
from pydantic import BaseModel, ValidationError

from services.common.eventstore import ConcurrencyError
from services.common.failures import MAX_REASON, Backoff, Transient, is_transient, reason
from services.common.pipeline import BatchAbandoned
from services.recovery.domain.errors import RecoveryError


class _Amount(BaseModel):
    amount: decimal.Decimal


def _validation_error() -> ValidationError:
    try:
        _Amount.model_validate({"amount": "lots"})
    except ValidationError as exc:
        return exc
    raise AssertionError("validated")


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


E = asyncpg.exceptions

TRANSIENT: list[BaseException] = [
    BatchAbandoned("the batch ahead failed"),
    Transient("batch kept losing races with another instance"),
    ConcurrencyError("case-1", 3, 4),
    E.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
    E.ConnectionFailureError("x"),  # 08006
    E.SerializationError("could not serialize access"),  # 40001
    E.DeadlockDetectedError("deadlock detected"),  # 40P01
    E.UndefinedTableError('relation "inbox" does not exist'),  # 42P01
    E.InsufficientPrivilegeError("permission denied for table events"),  # 42501
    E.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    E.DiskFullError("x"),  # 53100
    E.LockNotAvailableError("could not obtain lock"),  # 55P03
    E.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    E.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    E.PostgresSystemError("x"),  # 58000
    E.PostgresIOError("x"),  # 58030
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.exceptions._base.OutdatedSchemaCacheError("cached statement plan is invalid"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
    KafkaTimeoutError(),
    NodeNotReadyError(),
    _raised_from(RuntimeError("could not record the batch"), E.AdminShutdownError("x")),
    ExceptionGroup("two things", [ValueError("bad"), ConnectionResetError()]),
]

MESSAGE_FAULT: list[BaseException] = [
    E.DataError("invalid input for query argument $1"),  # 22000, the client's own check too
    E.NumericValueOutOfRangeError("numeric field overflow"),  # 22003
    E.StringDataRightTruncationError("value too long"),  # 22001
    E.InvalidTextRepresentationError("invalid input syntax for type numeric"),  # 22P02
    E.UniqueViolationError("duplicate key value violates unique constraint"),  # 23505
    E.CheckViolationError("new row violates check constraint"),  # 23514
    E.ProgramLimitExceededError("index row size 5016 exceeds btree version 4 maximum 2704"),  # 54000
    E.RaiseError("raised by a trigger"),  # P0001
    E.InternalServerError("x"),  # XX000
    ValueError("bad value"),
    decimal.InvalidOperation([decimal.InvalidOperation]),
    ZeroDivisionError(),
    OverflowError(),
    RecursionError("maximum recursion depth exceeded"),
    KeyError("charge"),
    TypeError("unsupported operand"),
    _validation_error(),
    RecoveryError("the case cannot take this"),
    MessageSizeTooLargeError(),
    _raised_from(RuntimeError("could not decide"), ValueError("bad")),
    ExceptionGroup("one thing", [ValueError("bad")]),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_failures_are_retried_never_dead_lettered(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", MESSAGE_FAULT, ids=lambda e: type(e).__name__)
def test_data_errors_and_bugs_are_the_messages_fault(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_every_transient_sqlstate_class_is_transient_and_no_other() -> None:
    for cls in vars(E).values():
        if not (isinstance(cls, type) and issubclass(cls, asyncpg.PostgresError)):
            continue
        sqlstate: str | None = cls.sqlstate  # type: ignore[attr-defined]  # asyncpg has no type hints
        if sqlstate:
            expected = sqlstate[:2] in {"08", "40", "42", "53", "55", "57", "58"}
            assert is_transient(cls("x")) == expected, sqlstate


def test_a_reason_names_the_class_on_one_bounded_line() -> None:
    assert reason(ValueError("bad\n  amount")) == "ValueError: bad amount"
    assert reason(KeyError()) == "KeyError"
    long = reason(ValueError("x" * 10_000))
    assert long.startswith("ValueError: xxx")
    assert len(long) <= MAX_REASON + len("ValueError: ")


def test_backoff_doubles_up_to_its_cap_with_up_to_half_taken_off() -> None:
    top = Backoff(0.5, 4.0, rand=lambda: 0.0)
    assert [top.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    bottom = Backoff(0.5, 4.0, rand=lambda: 0.999999)
    assert [round(bottom.next_delay(), 3) for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    top.reset()
    assert top.next_delay() == 0.5


def test_backoff_survives_a_long_outage() -> None:
    backoff = Backoff(0.5, 30.0, rand=lambda: 0.0)
    for _ in range(10_000):
        assert backoff.next_delay() <= 30.0

"""structlog, configured once per process: JSON when not on a terminal.

Ids are bound with :func:`structlog.contextvars.bound_contextvars` (``case_id``,
``correlation_id``, ``event_id``, ``charge_id``): the recovery application binds them per
batch and per message, so every line logged while a message is handled names it.

Never log names, emails or free text from customers. The last step before a line is
rendered is :func:`redact` (see :mod:`services.common.redact`): the value of a personal
key (``customer``, ``name``, ``email``, ``description``, ``subject``, ``text``, ...) is
replaced at any depth of the line, and every text is scrubbed of email addresses,
pydantic's quoted input and the process's known secrets (:func:`secrets_of` the settings,
handed to :func:`configure_logging`), the formatted exception and stack included. Lines of
libraries logging through the standard library (aiokafka, faststream) are scrubbed the same
way when they are made, their exception text included. An exception is logged with its
message and traceback (``exc_info``); a warning or an error logged inside an ``except``
block with an ``error`` key gets the exception being handled.

One stream: the libraries' lines (aiokafka, FastStream, uvicorn; WARNING and above) go
through the same processors and renderer as the services' own, with the ids bound at the
time and the name of their ``logger``. Every line logged inside a span carries its
``trace_id`` (and ``span_id``); a line logged while a message is handled carries the
message's trace id even with tracing off (the handler binds it with the other ids).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from opentelemetry import trace
from pydantic import BaseModel, SecretStr

from services.common.redact import redact_mapping, scrub, set_secrets

# Libraries that set up handlers of their own: their lines join the one stream instead.
_LIBRARY_LOGGERS = ("faststream", "faststream.access.kafka", "uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka")


def secrets_of(settings: BaseModel) -> list[str]:
    """The secret values of ``settings`` (every ``SecretStr`` field, and the password of a
    URL among them), to mask wherever they would appear in a log line."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            found.append(text)
            try:
                password = urlsplit(text).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The line with personal keys' values replaced at any depth and every text scrubbed."""
    return redact_mapping(event_dict)


def _scrubbed_records(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A log record factory: each record's message, exception and stack scrubbed as it is
    made, so whatever handler or formatter a library brings writes them scrubbed."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the logging module reports it itself
            return record
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return record

    factory.scrubs = True  # type: ignore[attr-defined]
    return factory


def exception_in_hand(_: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A warning or an error with an ``error`` key, logged while an exception is handled,
    carries that exception (message and traceback)."""
    if (
        "error" in event_dict
        and "exc_info" not in event_dict
        and method in ("warning", "error", "exception")
        and sys.exc_info()[0] is not None
    ):
        event_dict["exc_info"] = True
    return event_dict


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's trace and span ids (a trace id bound already is kept)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_logging(
    level: str = "INFO", fmt: str = "auto", *, secrets: Iterable[str] = (), stream: Any = None
) -> None:
    """``secrets``: values to mask in every line (see :func:`secrets_of`); ``stream``: where
    the lines go (standard error)."""
    stream = stream or sys.stderr
    set_secrets(secrets)
    if not getattr(logging.getLogRecordFactory(), "scrubs", False):
        logging.setLogRecordFactory(_scrubbed_records(logging.getLogRecordFactory()))
    json_output = fmt == "json" or (fmt == "auto" and not stream.isatty())
    head: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    tail: list[Any] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: over the formatted exception too.
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*head, exception_in_hand, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # Libraries logging through the standard library: WARNING and above, into the same stream.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*head, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    ))  # fmt: skip
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = []
        library.propagate = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

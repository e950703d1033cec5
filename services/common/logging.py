"""structlog, configured once per process: JSON when not on a terminal.

Bind ``event_id``, ``correlation_id`` and ``case_id`` per message with
:func:`structlog.contextvars.bound_contextvars`. Never log names, emails or free text from
customers: :func:`redact` drops those keys if they slip into an event dict.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PERSONAL_KEYS = frozenset(
    {"email", "name", "customer_name", "customer_email", "to", "reply_to", "description", "text",
     "html", "password", "database_url", "dsn"}
)  # fmt: skip


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _PERSONAL_KEYS & event_dict.keys():
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries using stdlib logging (aiokafka, faststream) go to stderr at WARNING.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

"""structlog, configured once per process: JSON when not on a terminal.

Ids are bound with :func:`structlog.contextvars.bound_contextvars` (``case_id``,
``correlation_id``, ``event_id``, ``charge_id``): the recovery application binds them per
batch and per message, so every line logged while a message is handled names it.

Never log names, emails or free text from customers: :func:`redact` drops those keys if
they slip into an event dict, and masks email addresses and the process's known secrets
(:func:`secrets_of` the settings, handed to :func:`configure_logging`) in every text it
logs, the formatted exception included. An exception is logged with its message and
traceback (``exc_info``); a warning or an error logged inside an ``except`` block with an
``error`` key gets the exception being handled.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, SecretStr

_PERSONAL_KEYS = frozenset(
    {"email", "name", "customer_name", "customer_email", "to", "reply_to", "description", "text",
     "html", "password", "database_url", "dsn"}
)  # fmt: skip
_ADDRESS = re.compile(r"[^\s<>\"'@:/]+@[^\s<>\"'@]+\.[^\s<>\"'@]+")
REDACTED = "[redacted]"
# Secrets shorter than this are not masked in text (they would mask common words).
_MIN_SECRET = 6
_secrets: tuple[str, ...] = ()


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


def set_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` in every log line from now on."""
    global _secrets
    # Longest first: a secret that contains another is masked whole.
    _secrets = tuple(sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True))


def redact_text(text: str) -> str:
    """``text`` with email addresses and known secrets masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _ADDRESS.sub(REDACTED, text) if "@" in text else text


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _PERSONAL_KEYS & event_dict.keys():
        event_dict[key] = REDACTED
    for key, value in event_dict.items():
        if type(value) is str:
            event_dict[key] = redact_text(value)
    return event_dict


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


def configure_logging(level: str = "INFO", fmt: str = "auto", *, secrets: Iterable[str] = ()) -> None:
    """``secrets``: values to mask in every line (see :func:`secrets_of`)."""
    set_secrets(secrets)
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        exception_in_hand,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: over the formatted exception too.
        redact,
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

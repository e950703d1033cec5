"""Masking personal data and secrets: one set of patterns for every text that leaves a
process, whether it is logged, stored, published or shown.

:func:`scrub` masks email addresses, pydantic's quoted input (``input_value=...``), the
process's known secrets (:func:`set_secrets`) and any values the caller knows to be
personal (a recipient's name). It is for free text: an exception's message and traceback,
an SMTP server's refusal (which usually quotes the address). A name cannot be recognised
by a pattern, so structured data is kept out by key instead: :func:`redact_value` replaces
the value of every key in :data:`PERSONAL_KEYS`, at any depth, and scrubs the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from pydantic import BaseModel

REDACTED = "[redacted]"
# Keys whose values are a customer's (or an employee's) data or free text from one, at any
# depth: never shown, whatever they hold. Secrets' keys too.
PERSONAL_KEYS = frozenset(
    {"customer", "email", "name", "customer_name", "customer_email", "to", "reply_to", "description",
     "subject", "body", "text", "html", "password", "database_url", "dsn"}
)  # fmt: skip
# How deep and how wide :func:`redact_value` goes: a log line is no place for a large tree.
MAX_DEPTH = 8
MAX_ITEMS = 100
TRUNCATED = "[truncated]"

# An address: a local part (or a quoted one) and a domain (or a literal such as [127.0.0.1]).
# No dot is required in the domain: a refusal may quote <root@localhost>.
_ATOM = r"[^\s<>()\[\]{}\"',;:@/\\]+"
_ADDRESS = re.compile(rf"(?:\"[^\"\r\n]*\"|{_ATOM})@(?:\[[^\]\s]*\]|{_ATOM})")
# pydantic's errors quote the refused input: ``[type=..., input_value='Luis', input_type=str]``.
_INPUT_VALUE = re.compile(r"input_value=(?:.*?(?=, input_type=)|[^\n\]]*)")
# Secrets shorter than this are not masked in text (they would mask common words).
_MIN_SECRET = 6
_secrets: tuple[str, ...] = ()


def set_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` in every text :func:`scrub` sees from now on (in this process)."""
    global _secrets
    # Longest first: a secret that contains another is masked whole.
    _secrets = tuple(sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True))


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with the known secrets, email addresses, pydantic's quoted input and each of
    ``known`` (as a whole word, in any case: a name the caller has in hand) masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for value in sorted({v.strip() for v in known if v and v.strip()}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", REDACTED, text, flags=re.IGNORECASE)
    if "@" in text:
        text = _ADDRESS.sub(REDACTED, text)
    if "input_value=" in text:
        text = _INPUT_VALUE.sub(f"input_value={REDACTED}", text)
    return text


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every :data:`PERSONAL_KEYS` key's value replaced, at any depth, and
    every text scrubbed. Containers come back as dicts and lists (tuples as tuples), cut at
    :data:`MAX_DEPTH` levels and :data:`MAX_ITEMS` items; a model as its dumped fields; any
    other object as its scrubbed text."""
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return TRUNCATED
    if isinstance(value, BaseModel):
        return redact_value(value.model_dump(mode="json"), depth)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i == MAX_ITEMS:
                out[TRUNCATED] = len(value) - MAX_ITEMS
                break
            personal = isinstance(key, str) and key.lower() in PERSONAL_KEYS
            out[key] = REDACTED if personal else redact_value(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(item, depth + 1) for item in islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            items.append(TRUNCATED)
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return scrub(str(value))


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`redact_value` of a mapping, typed as one."""
    redacted: dict[str, Any] = redact_value(data)
    return redacted

"""Reading a TOML configuration file into a frozen model: the domain's only I/O.

Both the policy and the roster are loaded the same way, and a bad file gives one error that
names the file and every bad field (``policy file x.toml: limits.USD.auto_refund_limit:
Input should be greater than 0``), so an operator can fix it without reading a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from services.recovery.domain.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def describe_errors(exc: ValidationError) -> str:
    """Every error of ``exc`` as ``dotted.field: message``, joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_toml_model(path: Path, model: type[M], what: str, error: type[ConfigError]) -> M:
    """Read ``path`` as TOML and validate it as ``model``; any failure raises ``error``.

    ``what`` names the kind of file in the message (``policy file``, ``roster file``).
    """
    label = f"{what} {path}"
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise error(f"{label}: cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{label}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{label}: {describe_errors(exc)}") from None

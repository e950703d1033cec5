"""What the operator commands print besides their tables: one-line errors and JSON."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

console = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as one line (never wrapped, no markup read into it); the exit to raise."""
    console.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(code)


def printed_as_json_or_none(as_json: bool, items: list[dict[str, Any]], none: str) -> bool:
    """Print ``items`` as JSON (with ``as_json``), or ``none`` if there are none; return
    whether that was all there was to print (else the caller prints its table)."""
    if as_json:
        print(json.dumps(items, indent=2))
    elif not items:
        console.print(none)
    return as_json or not items

"""What the operator commands read besides plain options: amounts with their currency, and
cases named by id or by reference (:func:`services.recovery.queries.resolve_case_id`)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

import typer
from babel.numbers import list_currencies

from services.common.contract.money import AMOUNT_PATTERN, minor_units

CaseArg = Annotated[str, typer.Argument(metavar="CASE", help="the case id, or its reference: RC-XXXX-XXXX-XXXX")]
_AMOUNT = re.compile(AMOUNT_PATTERN)


def parse_money(option: str, text: str) -> tuple[Decimal, str]:
    """``AMOUNT CURRENCY`` (``12.50 USD``) as an amount and an ISO 4217 code; a ValueError
    that names ``option`` when it is not one."""
    parts = text.split()
    shown = text if len(text) <= 40 else text[:40] + "..."
    if len(parts) != 2:
        raise ValueError(f"{option}: expected AMOUNT CURRENCY, e.g. '12.50 USD', not {shown!r}")
    amount, currency = parts[0], parts[1].upper()
    if not _AMOUNT.fullmatch(amount) or Decimal(amount) == 0:
        raise ValueError(f"{option}: the amount must be a decimal more than zero such as 12.50, not {amount!r}")
    if currency not in list_currencies():
        raise ValueError(f"{option}: {currency!r} is not an ISO 4217 currency code such as USD or EUR")
    decimals, most = len(amount.partition(".")[2]), minor_units(currency)
    if decimals > most:
        raise ValueError(f"{option}: an amount in {currency} has at most {most} decimals, not {decimals}")
    return Decimal(amount), currency

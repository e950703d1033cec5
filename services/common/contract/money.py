"""Money on the wire: a positive decimal string with at most the currency's minor units.

Never a float: a float on the wire is refused, because 0.1 + 0.2 is not a price. An
amount has at most :data:`MAX_AMOUNT_DIGITS` integer digits and :data:`MAX_AMOUNT_DECIMALS`
decimals (the most any currency has; :func:`check_minor_units` then applies the
currency's own), so every amount the models accept, and any sum or share of one the
policy computes, fits Decimal's default precision (28 digits) with room to spare.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

# ISO 4217 minor units where they differ from 2. Any other three-letter code has 2.
_MINOR_UNITS: dict[str, int] = {
    # zero-decimal currencies
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal currencies
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal units of account
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def minor_units(currency: str) -> int:
    """How many decimal places an amount in ``currency`` may have (ISO 4217)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


MAX_AMOUNT_DIGITS: Final = 15
"""Integer digits an amount may have: 10^15 of any currency is more than any real charge."""

MAX_AMOUNT_DECIMALS: Final = max(_MINOR_UNITS.values())
"""Decimals an amount may have at most, whatever the currency (4)."""

AMOUNT_PATTERN: Final = rf"^[0-9]{{1,{MAX_AMOUNT_DIGITS}}}(\.[0-9]{{1,{MAX_AMOUNT_DECIMALS}}})?$"

# ASCII digits only: str.isdigit() and Decimal() also take other scripts' digits ("٣").
_AMOUNT = re.compile(AMOUNT_PATTERN)
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def _parse_amount(value: Any) -> Decimal:
    # The messages never repeat the value: it may be a megabyte long.
    if isinstance(value, (bool, float)):
        raise ValueError('money must be a decimal string such as "4.99", never a float')
    if isinstance(value, int):
        value = str(value)  # beyond 4,300 digits Python refuses with ValueError: refused too
    if isinstance(value, str):
        text = value.strip()
        if _AMOUNT.fullmatch(text):
            return Decimal(text)
        if _DECIMAL.fullmatch(text):
            whole, _, fraction = text.partition(".")
            _check_digits(len(whole), len(fraction))
        raise ValueError('not a decimal amount such as "4.99"')
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("money must be finite")
        _check_digits(max(value.adjusted() + 1, 0), _decimals(value))
        return value
    raise ValueError(f"money must be a decimal string, got {type(value).__name__}")


def _check_digits(whole: int, decimals: int) -> None:
    if whole > MAX_AMOUNT_DIGITS:
        raise ValueError(f"an amount has at most {MAX_AMOUNT_DIGITS} integer digits, not {whole}")
    if decimals > MAX_AMOUNT_DECIMALS:
        raise ValueError(f"an amount has at most {MAX_AMOUNT_DECIMALS} decimals, not {decimals}")


def _decimals(amount: Decimal) -> int:
    # As written ("3000.0" has one). str() costs a third of as_tuple(), which only the rare
    # value str() writes with an exponent ("1E+2", "1E-7") takes.
    text = str(amount)
    if "E" in text:
        exponent = amount.as_tuple().exponent
        return -exponent if isinstance(exponent, int) and exponent < 0 else 0
    point = text.find(".")
    return len(text) - point - 1 if point >= 0 else 0


def format_amount(value: Decimal) -> str:
    """The wire form: plain notation, never an exponent."""
    return format(value, "f")


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    Field(gt=0),
    PlainSerializer(format_amount, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "maxLength": MAX_AMOUNT_DIGITS + 1 + MAX_AMOUNT_DECIMALS,
            "examples": ["4.99", "7455.00"],
        }
    ),
]
"""A positive amount of money; pair it with a ``currency`` field checked by
:func:`check_minor_units`."""

Currency = Annotated[str, Field(max_length=3, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


def check_minor_units(amount: Decimal | None, currency: str | None, field: str = "amount") -> None:
    """Raise ``ValueError`` if ``amount`` has more decimals than ``currency`` allows."""
    if amount is None:
        return
    if currency is None:
        raise ValueError(f"{field} needs a currency")
    places = _decimals(amount)
    allowed = minor_units(currency)
    if places > allowed:
        raise ValueError(f"{field} {format_amount(amount)} has {places} decimals; {currency} allows {allowed}")


# Half-even in a context of its own, whatever the thread's context says; 50 digits hold
# any amount within the bounds times any factor the policy applies, so quantize never
# raises InvalidOperation (a result wider than the precision) for them.
_ROUNDING = Context(prec=50, rounding=ROUND_HALF_EVEN)
_QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(MAX_AMOUNT_DECIMALS + 1)}


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor units (for computed amounts)."""
    return amount.quantize(_QUANTUM[minor_units(currency)], context=_ROUNDING)

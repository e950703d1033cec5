"""Money on the wire: a positive decimal string with at most the currency's minor units.

Never a float: a float on the wire is refused, because 0.1 + 0.2 is not a price.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

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


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ValueError('money must be a decimal string such as "4.99", never a float')
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or not all(c.isdigit() or c == "." for c in text) or text.count(".") > 1:
            raise ValueError(f"not a decimal amount: {value!r}")
        try:
            return Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - guarded above
            raise ValueError(f"not a decimal amount: {value!r}") from exc
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("money must be finite")
        return value
    raise ValueError(f"money must be a decimal string, got {type(value).__name__}")


def format_amount(value: Decimal) -> str:
    """The wire form: plain notation, never an exponent."""
    return format(value, "f")


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    Field(gt=0),
    PlainSerializer(format_amount, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "examples": ["4.99", "7455.00"]}),
]
"""A positive amount of money; pair it with a ``currency`` field checked by
:func:`check_minor_units`."""

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]


def check_minor_units(amount: Decimal | None, currency: str | None, field: str = "amount") -> None:
    """Raise ``ValueError`` if ``amount`` has more decimals than ``currency`` allows."""
    if amount is None:
        return
    if currency is None:
        raise ValueError(f"{field} needs a currency")
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    allowed = minor_units(currency)
    if places > allowed:
        raise ValueError(f"{field} {format_amount(amount)} has {places} decimals; {currency} allows {allowed}")


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor units (for computed amounts)."""
    places = minor_units(currency)
    return amount.quantize(Decimal(1).scaleb(-places))

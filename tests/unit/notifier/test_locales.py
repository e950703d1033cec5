"""Language choice, and money and dates written by Babel for the customer's full locale."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notifier.domain.locales import (
    Settlement,
    format_day,
    format_moment_utc,
    format_money,
    parse_settlement,
    resolve_locale,
)


@pytest.mark.parametrize(
    ("tag", "language", "used"),
    [
        ("es-CO", "es", "es-CO"),
        ("es-ES", "es", "es-ES"),
        ("es-MX", "es", "es-MX"),
        ("es_419", "es", "es-419"),
        ("es", "es", "es"),
        ("en-US", "en", "en-US"),
        ("EN-gb", "en", "en-GB"),
        ("fr-FR", "en", "en"),
        ("pt-BR", "en", "en"),
        ("xx-YY", "en", "en"),
    ],
)
def test_spanish_for_es_and_english_for_the_rest(tag: str, language: str, used: str) -> None:
    locale = resolve_locale(tag)
    assert locale.language == language
    assert locale.tag == used


def test_zero_decimal_currency_keeps_no_cents() -> None:
    assert format_money(Decimal("3000"), "JPY", resolve_locale("en-US")) == "¥3,000"


def test_colombian_pesos_in_colombia() -> None:
    # Whole pesos, as CLDR writes COP (two decimals before Babel 2.19's data, none since).
    assert format_money(Decimal("7455.00"), "COP", resolve_locale("es-CO")) == "$7.455"


def test_money_finer_than_the_currency_usually_shows_is_not_rounded() -> None:
    assert format_money(Decimal("7455.50"), "COP", resolve_locale("es-CO")) == "$7.455,50"
    assert format_money(Decimal("100.25"), "JPY", resolve_locale("en-US")) == "¥100.25"
    assert format_money(Decimal("0.005"), "USD", resolve_locale("en-US")) == "$0.005"
    assert format_money(Decimal("4.990"), "USD", resolve_locale("es-CO")) == "US$4,99"


@settings(max_examples=300, deadline=None)
@given(
    amount=st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    currency=st.sampled_from(["USD", "EUR", "COP", "JPY", "GBP", "MXN"]),
)
def test_money_written_in_english_reads_back_as_the_same_amount(amount: Decimal, currency: str) -> None:
    written = format_money(amount, currency, resolve_locale("en-US"))
    assert Decimal(re.sub(r"[^0-9.]", "", written)) == amount


def test_a_day_is_the_utc_date() -> None:
    late_evening_in_bogota = datetime(2027, 1, 31, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert format_day(late_evening_in_bogota, resolve_locale("es-CO")) == "1 de febrero de 2027"


def test_a_moment_is_given_in_utc_from_any_offset() -> None:
    moment = datetime(2026, 11, 22, 13, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert format_moment_utc(moment, resolve_locale("es-ES")) == "22 de noviembre de 2026, 18:30"
    assert format_moment_utc(moment.astimezone(UTC), resolve_locale("en-GB")) == ("22 November 2026, 18:30")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3-5 business days", Settlement("3-5 business days", 3, 5, True)),
        ("3 \u2013 5 business days", Settlement("3 \u2013 5 business days", 3, 5, True)),
        ("1 business day", Settlement("1 business day", 1, 1, True)),
        ("7 days", Settlement("7 days", 7, 7, False)),
        ("2 to 4 working days", Settlement("2 to 4 working days", 2, 4, True)),
        ("on your next bill", Settlement("on your next bill")),
        (None, None),
        ("  ", None),
    ],
)
def test_settlement_wording_is_understood(text: str | None, expected: Settlement | None) -> None:
    assert parse_settlement(text) == expected

"""Which language an apology is written in, and money, dates and times in the customer's locale.

The language is ``es`` for any ``es-*`` locale and ``en`` for everything else. Formatting
uses the customer's FULL locale through Babel (``es-CO`` writes ``US$4,99``, ``es-ES``
``4,99 US$``), unless the customer's language has no templates (``fr-FR``): then the text is
English and so are its numbers, formatted for plain ``en``. The customer has no time zone
on the wire, so times are given in UTC and the templates say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone, get_timezone_location
from babel.numbers import format_currency, get_currency_precision

Language = Literal["es", "en"]
LANGUAGES: tuple[Language, ...] = ("es", "en")
FALLBACK: Language = "en"


@dataclass(frozen=True)
class CustomerLocale:
    """The language of the templates and the Babel locale numbers and dates follow."""

    language: Language
    babel: Locale

    @property
    def tag(self) -> str:
        """The BCP 47 tag of the locale used (``es-CO``, ``en``), for ``EmailRequested.locale``."""
        return str(self.babel).replace("_", "-")


def resolve_locale(tag: str) -> CustomerLocale:
    """The language and formatting locale for a customer's locale tag (``es-CO``, ``en_US``)."""
    normalized = tag.strip().replace("-", "_")
    language_part = normalized.split("_", 1)[0].lower()
    language: Language = "es" if language_part == "es" else FALLBACK
    try:
        parsed = Locale.parse(normalized)
    except (UnknownLocaleError, ValueError):
        return CustomerLocale(language, Locale.parse(language))
    if parsed.language != language:
        # The text is in the fallback language: format its numbers that way too.
        return CustomerLocale(language, Locale.parse(language))
    return CustomerLocale(language, parsed)


def format_money(amount: Decimal, currency: str, locale: CustomerLocale) -> str:
    """``amount`` in ``currency`` written the way the customer's locale writes money, exactly.

    With the currency's usual number of decimals (CLDR's: two for ``USD``, none for ``JPY``
    and, in current CLDR data, for ``COP``) where that is exact. An amount with finer digits
    shows them all, at least two: Babel would round them off (``COP 7455.50`` would read
    ``$7.456``), and an apology must not misstate the money.
    """
    if amount == round(amount, get_currency_precision(currency)):
        return format_currency(amount, currency, locale=locale.babel)
    shown = max(-int(amount.normalize().as_tuple().exponent), 2)
    return format_currency(
        amount.quantize(Decimal(1).scaleb(-shown)),
        currency,
        locale=locale.babel,
        currency_digits=False,
        decimal_quantization=False,
    )


def format_day(moment: datetime, locale: CustomerLocale) -> str:
    """The UTC calendar date of ``moment``, long form (``22 de noviembre de 2026``)."""
    return format_date(moment.astimezone(UTC).date(), "long", locale=locale.babel)


def format_moment_utc(moment: datetime, locale: CustomerLocale) -> str:
    """``moment`` in UTC: long date and short time joined by the locale's own pattern.

    The zone is not part of the string; the templates state it (the customer's zone is
    unknown, so UTC it is, said as such).
    """
    utc = moment.astimezone(UTC)
    pattern = str(locale.babel.datetime_formats["long"])
    time_part = format_time(utc, "short", tzinfo=UTC, locale=locale.babel)
    date_part = format_date(utc.date(), "long", locale=locale.babel)
    return pattern.replace("{0}", time_part).replace("{1}", date_part)


# A weekday and a day of the month, without the year: "lunes 8 de diciembre".
_WEEKDAY_DATE: dict[Language, str] = {"es": "EEEE d 'de' MMMM", "en": "EEEE d MMMM"}


@dataclass(frozen=True)
class LocalMoment:
    """A moment as the wall clock of a place shows it, each part written in the customer's
    locale; the templates join them into a sentence of their language."""

    day: str  # "lunes 8 de diciembre"
    time: str  # "14:00" (the locale's short time)
    place: str  # "Bogotá": the zone's city, in the customer's language


def format_local_moment(moment: datetime, zone: str, locale: CustomerLocale) -> LocalMoment:
    """``moment`` on the wall clock of the IANA ``zone`` (a team's calendar), for the customer."""
    tz = get_timezone(zone)
    local = moment.astimezone(tz)
    return LocalMoment(
        day=format_date(local.date(), _WEEKDAY_DATE[locale.language], locale=locale.babel),
        time=format_time(local, "short", tzinfo=tz, locale=locale.babel),
        place=get_timezone_location(tz, locale=locale.babel, return_city=True),
    )


@dataclass(frozen=True)
class Settlement:
    """When money shows on a statement, parsed from the policy's English wording.

    ``min_days``/``max_days`` are set when the wording was understood (``"3-5 business
    days"``), so each template can say it in its own language; ``text`` is the original
    wording, shown as given when it was not understood.
    """

    text: str
    min_days: int | None = None
    max_days: int | None = None
    business: bool = True


_SETTLEMENT = re.compile(
    r"^\s*(?P<lo>\d{1,3})\s*(?:(?:-|\u2013|to)\s*(?P<hi>\d{1,3})\s*)?"
    r"(?P<kind>business|working|calendar)?\s*days?\s*$",
    re.IGNORECASE,
)


def parse_settlement(text: str | None) -> Settlement | None:
    """Parse ``"3-5 business days"``, ``"1 business day"``, ``"7 days"``; ``None`` for none."""
    if text is None or not text.strip():
        return None
    match = _SETTLEMENT.match(text)
    if match is None:
        return Settlement(text=text.strip())
    low = int(match["lo"])
    high = int(match["hi"]) if match["hi"] else low
    kind = (match["kind"] or "calendar").lower()
    return Settlement(
        text=text.strip(),
        min_days=min(low, high),
        max_days=max(low, high),
        business=kind in ("business", "working"),
    )

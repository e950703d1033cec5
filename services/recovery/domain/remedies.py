"""Building remedies: refunds, waivers, vouchers with unguessable codes, goods and service.

A voucher's code is an HMAC (SHA-256) of the case id and the case's voucher sequence
number under a secret the domain is handed as a value (:class:`VoucherKey`): nobody who
knows only what the customer or the public sees (a case id, how many vouchers a case has)
can compute one, and the same secret gives the same code again, so a replay of a case
issues the very codes it issued live. Codes are never drawn at random.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from services.common.contract.events import Remedy, RemedyType
from services.common.contract.money import quantize
from services.recovery.domain import build

VOUCHER_PREFIX = "RV"
MIN_SECRET_BYTES = 32
"""The shortest voucher secret accepted: the length of SHA-256's output, the least RFC 2104
advises for an HMAC key."""


class VoucherCodes(Protocol):
    """Where a decision's voucher codes come from: the code of a case's ``sequence``-th
    voucher (0-based). Live, a :class:`VoucherKey`; a what-if reuses the recorded codes."""

    def __call__(self, case_id: str, sequence: int) -> str: ...


@dataclass(frozen=True)
class VoucherKey:
    """Voucher codes under ``secret``: ``RV-XXXX-XXXX-XXXX``, 60 bits of HMAC-SHA256 of the
    case id and the sequence, in base32. Raises ``ValueError`` for a secret shorter than
    :data:`MIN_SECRET_BYTES`."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a voucher secret needs at least {MIN_SECRET_BYTES} bytes")

    def __call__(self, case_id: str, sequence: int) -> str:
        message = f"{case_id}\x1fvoucher\x1f{sequence}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        letters = base64.b32encode(digest).decode()[:12]
        return "-".join((VOUCHER_PREFIX, letters[:4], letters[4:8], letters[8:]))


@dataclass
class VoucherMint:
    """Issues the vouchers of one decision, numbering on from those the case already has.

    ``next_sequence`` starts at ``case.vouchers_issued``; a decision that is not made (say
    the guardrail refers it) consumes nothing, because the count only moves when a
    ``DecisionMade`` is applied.
    """

    case_id: str
    next_sequence: int
    codes: VoucherCodes

    def issue(self, amount: Decimal, currency: str, expires_at: datetime, charge_id: str | None = None) -> Remedy:
        """A voucher remedy with the next code."""
        return build.remedy(
            type="voucher",
            charge_id=charge_id,
            amount=quantize(amount, currency),
            currency=currency,
            voucher_code=self._next(),
            expires_at=expires_at,
        )

    def reissue(self, voucher: Remedy) -> Remedy:
        """A person's voucher under the next code: the service issues every code, so one
        typed into a form (or derived from a case id) never reaches a customer."""
        return voucher.model_copy(update={"voucher_code": self._next()})

    def _next(self) -> str:
        code = self.codes(self.case_id, self.next_sequence)
        self.next_sequence += 1
        return code


def voucher_expiry(now: datetime, valid_days: int) -> datetime:
    """When a voucher issued at ``now`` expires."""
    return now + timedelta(days=valid_days)


def refund(charge_id: str | None, amount: Decimal, currency: str, settlement: str) -> Remedy:
    """Money back to the customer, with when it shows on the statement."""
    return build.remedy(
        type="refund",
        charge_id=charge_id,
        amount=quantize(amount, currency),
        currency=currency,
        settlement=settlement,
    )


def charge_waiver(charge_id: str, amount: Decimal, currency: str) -> Remedy:
    """The charge taken off the bill (a bill correction, not money sent back)."""
    return build.remedy(
        type="charge_waiver",
        charge_id=charge_id,
        amount=quantize(amount, currency),
        currency=currency,
    )


def service(kind: RemedyType, charge_id: str | None) -> Remedy:
    """A remedy without money: ``repair``, ``replacement`` or ``cancellation``."""
    return build.remedy(type=kind, charge_id=charge_id)


def money_text(amount: Decimal, currency: str) -> str:
    """``USD 4.99``: how reasons name an amount."""
    return f"{currency} {format(quantize(amount, currency), 'f')}"

"""Deciding a command and keeping the books on what it produced: the case folded event by
event, and the customer's history (automatic concessions, the owner of the last case).

One copy, used by the live service (``application.py``), the what-if simulation
(``whatif/simulate.py``) and the tests that record histories as the service does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from services.common.contract.construct import constructor
from services.common.contract.events import CaseOpened, DecisionMade, EventData
from services.recovery.domain.case import Case, apply
from services.recovery.domain.commands import AnyCommand
from services.recovery.domain.decide import decide
from services.recovery.domain.facts import NO_HISTORY, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy
from services.recovery.domain.remedies import VoucherCodes
from services.recovery.domain.roster import Roster

# Histories made of values validated already.
_history = constructor(CustomerHistory)


class Histories:
    """Customers' histories, kept up to date as events are recorded (:meth:`note`)."""

    __slots__ = ("known",)

    def __init__(self, known: Mapping[str, CustomerHistory] | None = None) -> None:
        self.known: dict[str, CustomerHistory] = dict(known or {})

    def of(self, customer_id: str) -> CustomerHistory:
        return self.known.get(customer_id) or NO_HISTORY

    def note(self, data: EventData) -> None:
        """Count ``data`` in: an automatic concession is added to the customer's
        ``concession_times``; an opened case makes its owner the customer's last."""
        kind = type(data)
        if kind is DecisionMade:
            if is_concession(data):  # type: ignore[arg-type]
                customer = data.customer.id  # type: ignore[attr-defined]
                hist = self.of(customer)
                self.known[customer] = _history(
                    concession_times=(*hist.concession_times, data.decided_at),  # type: ignore[attr-defined]
                    previous_owner_id=hist.previous_owner_id,
                )
        elif kind is CaseOpened:
            customer = data.customer_id  # type: ignore[attr-defined]
            hist = self.of(customer)
            self.known[customer] = _history(
                concession_times=hist.concession_times,
                previous_owner_id=data.case_owner.id,  # type: ignore[attr-defined]
            )


def decide_and_record(
    case: Case | None,
    command: AnyCommand,
    now: datetime,
    policy: Policy,
    roster: Roster,
    codes: VoucherCodes,
    histories: Histories,
) -> list[tuple[EventData, Case]]:
    """``decide``, then each event it produced with the case as it stands after it, every
    one counted in ``histories`` (raises the domain's ``CommandRejected`` as ``decide`` does)."""
    out: list[tuple[EventData, Case]] = []
    for data in decide(case, command, now, policy, roster, codes):
        case = apply(case, data)
        histories.note(data)
        out.append((data, case))
    return out

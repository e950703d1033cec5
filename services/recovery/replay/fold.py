"""The rebuild's in-memory side: pages of stored events folded into cases and projection
inputs, with what it takes to write the same rows as the live service wrote.

The live service projects after every transaction (a Kafka batch, due timers, an agent's
decision); a rebuild writes once a page. Two things make that give the same rows:

- ``rm_cases.updated_at`` is the batch's ``now`` live; every case event the batch appended
  carries that very time, so a rebuild takes the time of the case's last event.
- Columns the live upsert never updates (``opened_at`` and the other
  identity columns) keep the values of the case's first transaction: a case opened in this
  page and touched again by a later transaction is written twice, as of the end of its first
  transaction and as of now. Events of one transaction share ``recorded_at``, and pages end
  on a transaction boundary (:func:`whole_transactions`).

(A refund that came before its charge waits for it in ``rm_early_refunds``, live; in a
page the projection records the charges before the refunds, so it needs no such care.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common.contract.events import ChargePosted, ChargeRefunded, DecisionMade, EventData
from services.recovery.domain.case import Case, apply
from services.recovery.domain.events import CASE_EVENT_TYPES
from services.recovery.replay.trusted import load_json

CHARGE_TYPES: dict[str, type[EventData]] = {ChargePosted.TYPE: ChargePosted, ChargeRefunded.TYPE: ChargeRefunded}
CASE_PREFIX = "case-"

# A page row: global_position, stream_id, version, event_type, data (JSON text), occurred_at,
# recorded_at (the order of the SELECT in rebuild.py).
Row = Sequence[Any]
Flat = tuple[EventData, datetime, datetime]  # data, occurred_at, recorded_at


def types_for(projections: frozenset[str]) -> list[str]:
    """The event types the chosen projections read (the others are not even fetched)."""
    types: set[str] = set()
    if "charges" in projections:
        types |= set(CHARGE_TYPES)
    if "concessions" in projections:
        types.add(DecisionMade.TYPE)
    if "cases" in projections:
        types |= set(CASE_EVENT_TYPES)
    return sorted(types)


def whole_transactions(rows: Sequence[Row]) -> Sequence[Row]:
    """A full page without the trailing events of the transaction it may have cut (the
    events sharing the last ``recorded_at``), which the next page reads again. Empty when
    the page holds one transaction only: the caller reads on until it ends.

    (A page shorter than asked needs no cut: a transaction commits all its events at once.)
    """
    if not rows:
        return rows
    last = rows[-1][6]
    end = len(rows)
    while end > 0 and rows[end - 1][6] == last:
        end -= 1
    return rows[:end]


@dataclass(slots=True)
class Tracked:
    """A case being rebuilt, with what its rows need beyond the state."""

    case: Case
    version: int
    last_at: datetime  # occurred_at of its last event: the live batch's `now`
    last_pos: int
    first_tx: datetime | None  # recorded_at of its CaseOpened, while not yet written
    first_state: Case | None = None  # its state at the end of that transaction, if touched later


class Folder:
    """Folds pages of events; ``take`` hands over what a write needs and starts afresh."""

    def __init__(self, projections: frozenset[str]) -> None:
        self.cases_on = "cases" in projections
        self.charges_on = "charges" in projections
        self.concessions_on = "concessions" in projections
        self.cases: dict[str, Tracked] = {}
        self.dirty: dict[str, Tracked] = {}
        self.flat: list[Flat] = []
        self.folded = 0
        self.complete = True  # every case seen since position 0 is in memory

    def missing(self, rows: Sequence[Row]) -> list[str]:
        """Case streams in ``rows`` whose earlier events are not folded in memory."""
        if self.complete or not self.cases_on:
            return []
        wanted: dict[str, None] = {}
        for r in rows:
            stream = r[1]
            if stream.startswith(CASE_PREFIX) and stream[len(CASE_PREFIX) :] not in self.cases:
                wanted[stream] = None
        return list(wanted)

    def load(self, rows: Sequence[Row]) -> None:
        """Fold the earlier events of cases (already written: not new) in stream order."""
        for r in rows:
            data = load_json(CASE_EVENT_TYPES[r[3]], r[4])
            cid = r[1][len(CASE_PREFIX) :]
            t = self.cases.get(cid)
            if t is None:
                self.cases[cid] = Tracked(apply(None, data), r[2], r[5], r[0], None)
            else:
                t.case, t.version, t.last_at, t.last_pos = apply(t.case, data), r[2], r[5], r[0]

    def fold(self, rows: Sequence[Row]) -> None:
        for pos, stream, version, etype, text, occurred, recorded in rows:
            self.folded += 1
            charge = CHARGE_TYPES.get(etype)
            if charge is not None:
                if self.charges_on:
                    self.flat.append((load_json(charge, text), occurred, recorded))
                continue
            model = CASE_EVENT_TYPES.get(etype)
            if model is None or not stream.startswith(CASE_PREFIX):
                continue
            data = load_json(model, text)
            if self.concessions_on and isinstance(data, DecisionMade):
                self.flat.append((data, occurred, recorded))
            if not self.cases_on:
                continue
            cid = stream[len(CASE_PREFIX) :]
            t = self.cases.get(cid)
            if t is None:
                t = self.cases[cid] = Tracked(apply(None, data), version, occurred, pos, recorded)
            else:
                if t.first_tx is not None and t.first_state is None and recorded != t.first_tx:
                    t.first_state = t.case
                t.case, t.version, t.last_at, t.last_pos = apply(t.case, data), version, occurred, pos
            self.dirty[cid] = t

    def take(self) -> tuple[list[Flat], list[Tracked]]:
        """The charge/concession events and the touched cases (by last event) to write."""
        flat, dirty = self.flat, sorted(self.dirty.values(), key=lambda t: t.last_pos)
        self.flat, self.dirty = [], {}
        return flat, dirty

    def written(self, cases: Sequence[Tracked]) -> None:
        """``cases`` now have rows: their identity columns are fixed."""
        for t in cases:
            t.first_tx = t.first_state = None

    def forget(self) -> None:
        """Drop every case from memory (they are re-folded from their streams on demand)."""
        self.cases.clear()
        self.dirty.clear()
        self.flat.clear()
        self.complete = False

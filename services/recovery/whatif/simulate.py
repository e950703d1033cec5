"""The what-if simulation: past complaints re-decided under a candidate policy. Pure.

A case's stream records every input a decision read, grouped by the message that caused
it (``causationid``): a complaint (``ContactAdded``, with the charge facts of a
``ChargeLinked`` when the charge was known), a charge that arrived for a waiting case
(``ChargeLinked`` on its own), a timer (``timer:<case>:<kind>:<due>``) or a person's
decision (``DecisionMade`` by ``agent:<id>``). :func:`simulate` turns those into commands,
runs them through :func:`~services.recovery.domain.decide` in their original time order
across all cases, with the clock set to each command's time and one in-memory history per
customer, fires the timers the *candidate* policy sets (:func:`pending_timers`) on the
simulated clock, and summarises each case on both sides (:mod:`.outcome`).

Charges: a case knows its charge from the moment the live case linked it (the facts it
recorded, medians included), and each command gets the charge as last recorded before it
(a decision on a case whose charge's ledger had moved recorded it again, with billing's
refunds as read then); as in the application, a charge that arrives later goes only to a
case still waiting for it. What remains on a charge is counted from the simulated case's
own decisions (``domain.ledger``).

Voucher codes: a simulated voucher gets the code the case recorded at the same place in its
sequence, which is the code the live service would give it (the code of a case's n-th
voucher depends on nothing else, see ``domain.remedies``), so the simulation needs no
secret; a voucher the live case never issued gets a placeholder code (``WHATIF-<n>``).

People: a person's recorded decision is replayed when the simulated case is waiting for a
person at that moment; otherwise it does not happen (an escalation avoided). Where the
candidate escalates a case the policy in force decided by itself, the simulation assumes a
person grants what was granted live, at once (``agent:what-if-assumed``): the escalation
counts, the money stays as it was (unless the charge's ledger refuses it). Timers fire
when the live service fired the same timer (same kind and due time), else at their due
time, and never after ``horizon`` (the time of the last recorded event: the simulation
does not run into the future).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.common.contract.events import ComplaintFiled, DecisionMade, EventData, Reason, Remedy
from services.recovery.bookkeeping import Histories, decide_and_record
from services.recovery.domain import (
    AgentDecide,
    AnyCommand,
    Case,
    ChargeArrived,
    ChargeFacts,
    CommandRejected,
    CustomerHistory,
    FileComplaint,
    FireTimer,
    Policy,
    Roster,
    pending_timers,
)
from services.recovery.whatif.outcome import (
    CASE_OPENED,
    CHARGE_LINKED,
    CONTACT_ADDED,
    DECISION,
    Outcome,
    OutcomeBuilder,
)

ASSUMED_AGENT = "what-if-assumed"
EFFORT_VOUCHER_REASON = "effort_voucher"
UNRECORDED_VOUCHER = "WHATIF"


@dataclass(frozen=True, slots=True)
class Recorded:
    """One stored event of a case: its type, its data as stored, when, why, where."""

    type: str
    data: dict[str, Any]
    at: datetime
    cause: str
    position: int


@dataclass(frozen=True, slots=True)
class RecordedCase:
    """A case's whole stream, in version order."""

    case_id: str
    events: tuple[Recorded, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case on both sides."""

    case_id: str
    customer_id: str
    filed_at: str
    currency: str | None
    before: Outcome
    after: Outcome
    assumed_person: int
    person_skipped: int

    @property
    def changed(self) -> bool:
        return self.before.signature() != self.after.signature()

    @property
    def exact(self) -> bool:
        """Every simulated event equals the recorded one (only possible with the same policy)."""
        return self.before.digest == self.after.digest

    @property
    def month(self) -> str:
        return self.filed_at[:7]


@dataclass(frozen=True, slots=True)
class _Step:
    kind: str  # complaint | charge | agent | timer
    at: datetime
    position: int
    last: int  # the position of the group's last event
    events: tuple[Recorded, ...]
    complaint: ComplaintFiled | None = None
    agent: AgentDecide | None = None
    policy_decision: dict[str, Any] | None = None


@dataclass
class _Sim:
    """The simulated side of one case while the simulation runs."""

    case_id: str
    customer_id: str
    recorded_owner: str
    charges: tuple[tuple[datetime, int, ChargeFacts], ...]  # as recorded: when, where, what
    fired: dict[tuple[str, datetime], tuple[datetime, int]]
    timer_steps: dict[tuple[str, datetime], _Step]
    case: Case | None = None
    builder: OutcomeBuilder = field(default_factory=OutcomeBuilder)
    scheduled: set[tuple[str, datetime]] = field(default_factory=set)
    assumed: int = 0
    skipped: int = 0

    def charge_at(self, at: datetime, position: float) -> ChargeFacts | None:
        """The charge as the case last recorded it at or before (``at``, ``position``)."""
        known = None
        for when, where, facts in self.charges:
            if (when, where) > (at, position):
                break
            known = facts
        return known


def _steps(case: RecordedCase) -> list[_Step]:
    groups: list[list[Recorded]] = []
    for ev in case.events:
        if groups and groups[-1][0].cause == ev.cause:
            groups[-1].append(ev)
        else:
            groups.append([ev])
    return [_step(group) for group in groups]


def _step(group: list[Recorded]) -> _Step:
    first = group[0]
    decision = next((e.data for e in group if e.type == DECISION), None)
    added = next((e for e in group if e.type == CONTACT_ADDED), None)
    by = str(decision["decided_by"]) if decision is not None else ""
    complaint = ComplaintFiled.model_validate(added.data["complaint"]) if added is not None else None
    agent = agent_command(decision) if decision is not None and by.startswith("agent:") else None
    if complaint is not None:
        kind = "complaint"
    elif first.cause.startswith("timer:"):
        kind = "timer"
    elif agent is not None:
        kind = "agent"
    else:
        kind = "charge" if first.type == CHARGE_LINKED else "other"
    return _Step(
        kind,
        first.at,
        first.position,
        group[-1].position,
        tuple(group),
        complaint=complaint,
        agent=agent,
        policy_decision=decision if by == "policy" else None,
    )


def agent_command(decision: Mapping[str, Any], agent_id: str | None = None) -> AgentDecide:
    """The person's command behind a recorded decision, without the effort voucher the
    domain added to it (``decision_made`` appends that voucher and its reason last)."""
    remedies = [Remedy.model_validate(r) for r in decision["remedies"]]
    reasons = [Reason.model_validate(r) for r in decision["reasons"]]
    if reasons and reasons[-1].code == EFFORT_VOUCHER_REASON and remedies and remedies[-1].type == "voucher":
        remedies, reasons = remedies[:-1], reasons[:-1]
    note = next((r.text for r in reasons if r.code == "agent_note"), None)
    declined = decision["outcome"] == "declined"
    return AgentDecide(
        agent_id=agent_id or str(decision["decided_by"]).removeprefix("agent:"),
        remedies=() if declined else tuple(remedies),
        decline_reason=reasons[0] if declined and reasons else None,
        note=note,
    )


class _RecordedCodes:
    """The voucher codes the recorded cases issued, by case and sequence number."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, int], str] = {}

    def add(self, case: RecordedCase) -> None:
        sequence = 0
        for ev in case.events:
            if ev.type == DECISION:
                for r in ev.data["remedies"]:
                    if r["type"] == "voucher":
                        self.codes[(case.case_id, sequence)] = str(r["voucher_code"])
                        sequence += 1

    def __call__(self, case_id: str, sequence: int) -> str:
        return self.codes.get((case_id, sequence), f"{UNRECORDED_VOUCHER}-{sequence}")


def _timer_key(cause: str) -> tuple[str, datetime] | None:
    parts = cause.split(":", 3)
    if len(parts) != 4:
        return None
    return parts[2], datetime.fromisoformat(parts[3])


@dataclass(order=True)
class _Item:
    at: datetime
    position: float
    seq: int
    case_id: str = field(compare=False)
    kind: str = field(compare=False)
    step: _Step | None = field(compare=False, default=None)
    timer: tuple[str, datetime] | None = field(compare=False, default=None)


class Simulation:
    """One run: feed it recorded cases, then :meth:`run`."""

    def __init__(
        self,
        policy: Policy,
        roster: Roster,
        horizon: datetime,
        prior_concessions: Mapping[str, Sequence[datetime]] | None = None,
    ) -> None:
        self.policy = policy
        self.roster = roster
        self.horizon = horizon
        self._histories = Histories(
            {
                cid: CustomerHistory(concession_times=tuple(sorted(times)))
                for cid, times in (prior_concessions or {}).items()
            }
        )
        self._cases: dict[str, _Sim] = {}
        self._before: dict[str, OutcomeBuilder] = {}
        self._heap: list[_Item] = []
        self._codes = _RecordedCodes()
        self._seq = 0
        self._window = timedelta(days=policy.guardrail_window_days + 1)

    # ---------------------------------------------------------------- loading

    def add(self, case: RecordedCase) -> None:
        """Take in one recorded case: its summary as recorded, and its inputs as commands."""
        before = OutcomeBuilder()
        for ev in case.events:
            before.add(ev.type, ev.data)
        self._before[case.case_id] = before
        self._codes.add(case)
        steps = _steps(case)
        opened = next((e.data for e in case.events if e.type == CASE_OPENED), None)
        if opened is None:
            return
        linked = tuple(
            (e.at, e.position, ChargeFacts.model_validate(e.data["charge"]))
            for e in case.events
            if e.type == CHARGE_LINKED
        )
        fired: dict[tuple[str, datetime], tuple[datetime, int]] = {}
        timer_steps: dict[tuple[str, datetime], _Step] = {}
        for s in steps:
            key = _timer_key(s.events[0].cause) if s.kind == "timer" else None
            if key is not None:
                fired[key] = (s.at, s.position)
                timer_steps[key] = s
        self._cases[case.case_id] = _Sim(
            case_id=case.case_id,
            customer_id=str(opened["customer_id"]),
            recorded_owner=str(opened["case_owner"]["id"]),
            charges=linked,
            fired=fired,
            timer_steps=timer_steps,
        )
        for s in steps:
            if s.kind in ("complaint", "charge", "agent"):
                self._push(s.at, s.position, case.case_id, s.kind, step=s)

    def _push(self, at: datetime, position: float, case_id: str, kind: str, **extra: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Item(at, position, self._seq, case_id, kind, **extra))

    # ---------------------------------------------------------------- running

    def run(self, progress: Callable[[int], None] | None = None) -> list[CaseResult]:
        """Decide every command in time order; ``progress(n)`` after each complaint."""
        while self._heap:
            item = heapq.heappop(self._heap)
            sim = self._cases[item.case_id]
            self._handle(sim, item)
            if progress is not None and item.kind == "complaint":
                progress(1)
        return [self._result(cid, b) for cid, b in self._before.items()]

    def case(self, case_id: str) -> Case | None:
        """The simulated case as it stands (after :meth:`run`: at the end)."""
        sim = self._cases.get(case_id)
        return sim.case if sim is not None else None

    def _history(self, sim: _Sim, at: datetime) -> CustomerHistory:
        known = self._histories.of(sim.customer_id)
        start = at - self._window
        times = tuple(t for t in known.concession_times if start < t <= at)
        return CustomerHistory(concession_times=times, previous_owner_id=known.previous_owner_id or sim.recorded_owner)

    def _command(self, sim: _Sim, item: _Item) -> AnyCommand | None:
        step, at = item.step, item.at
        if item.kind == "timer":
            assert item.timer is not None
            sim.scheduled.discard(item.timer)
            recorded = sim.timer_steps.get(item.timer)
            # Fired where the live service fired it: the charge as that step recorded it.
            last = recorded.last if recorded is not None and recorded.position == item.position else item.position
            return FireTimer(kind=item.timer[0], due_at=item.timer[1], history=self._history(sim, at),
                             charge=sim.charge_at(at, last))  # fmt: skip
        assert step is not None
        charge = sim.charge_at(at, step.last)
        if step.kind == "complaint":
            assert step.complaint is not None
            return FileComplaint(complaint=step.complaint, charge=charge, history=self._history(sim, at))
        if step.kind == "charge":
            # The application hands a charge only to cases listening for it (rm_awaiting_charge:
            # waited for it and not decided, escalated or not); one the candidate policy has
            # decided meanwhile does not hear of it.
            if sim.case is None or not sim.case.listens_for_charge or charge is None:
                return None
            return ChargeArrived(charge=charge, history=self._history(sim, at))
        if sim.case is None or sim.case.status != "escalated":
            sim.skipped += 1  # decided without a person under the candidate policy
            return None
        assert step.agent is not None
        return step.agent.model_copy(update={"charge": charge})

    def _handle(self, sim: _Sim, item: _Item) -> None:
        command = self._command(sim, item)
        produced = self._decide(sim, command, item.at) if command is not None else []
        step = item.step if item.timer is None else sim.timer_steps.get(item.timer)
        recorded = step.policy_decision if step is not None else None
        decided = any(isinstance(e, DecisionMade) for e in produced)
        if recorded is not None and not decided and sim.case is not None and sim.case.status == "escalated":
            # Decided by the policy in force here, left to a person by the candidate.
            assumed = agent_command(recorded, ASSUMED_AGENT).model_copy(update={"charge": sim.case.charge})
            if assumed.remedies:
                sim.assumed += 1
                self._decide(sim, assumed, item.at)
        self._schedule(sim, item)

    def _decide(self, sim: _Sim, command: AnyCommand, at: datetime) -> list[EventData]:
        try:
            produced = decide_and_record(sim.case, command, at, self.policy, self.roster, self._codes, self._histories)
        except CommandRejected:
            return []
        for event, case in produced:
            sim.case = case
            sim.builder.add(event.TYPE, event.model_dump(mode="json", exclude_none=True))
        return [event for event, _ in produced]

    def _schedule(self, sim: _Sim, item: _Item) -> None:
        if sim.case is None:
            return
        for timer in pending_timers(sim.case, self.policy):
            key = (timer.kind, timer.due_at)
            if key in sim.scheduled:
                continue
            fired = sim.fired.get(key)
            at, position = fired if fired is not None else (timer.due_at, math.inf)
            if (at, position) < (item.at, item.position):
                at, position = max(timer.due_at, item.at), math.inf
            if at > self.horizon:
                continue
            sim.scheduled.add(key)
            self._push(at, position, sim.case_id, "timer", timer=key)

    def _result(self, case_id: str, before: OutcomeBuilder) -> CaseResult:
        sim = self._cases.get(case_id)
        after = sim.builder if sim is not None else OutcomeBuilder()
        return CaseResult(
            case_id=case_id,
            customer_id=before.customer_id,
            filed_at=before.filed_at,
            currency=before.currency,
            before=before.finish(),
            after=after.finish(),
            assumed_person=sim.assumed if sim else 0,
            person_skipped=sim.skipped if sim else 0,
        )


def simulate(
    cases: Iterable[RecordedCase],
    policy: Policy,
    roster: Roster,
    horizon: datetime,
    prior_concessions: Mapping[str, Sequence[datetime]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[CaseResult]:
    """Re-decide ``cases`` under ``policy``; one :class:`CaseResult` per case."""
    sim = Simulation(policy, roster, horizon, prior_concessions)
    for case in cases:
        sim.add(case)
    return sim.run(progress)

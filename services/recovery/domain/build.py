"""Trusted constructors for what the domain derives from validated inputs.

The domain's inputs are validated where they enter (Kafka, the ops API, the policy file);
what it builds from them (reasons, remedies, events) is correct by construction, and
validating it again was a third of the recovery service's CPU per complaint. These build
the models without that second validation; ``tests/unit/recovery/test_properties.py``
validates everything they build across generated complaints, every rule and timer.
"""

from __future__ import annotations

from services.common.contract.construct import constructor
from services.common.contract.events import (
    CaseEscalated,
    CaseOpened,
    ChargeFlagged,
    DecisionMade,
    PolicyRef,
    Reason,
    Remedy,
    SlaBreached,
    SlaWarning,
)
from services.recovery.domain.events import ChargeAwaited, ChargeLinked, ContactAdded, EffortVoucherOwed
from services.recovery.domain.facts import ChargeFacts

reason = constructor(Reason)
remedy = constructor(Remedy)
policy_ref = constructor(PolicyRef)
case_opened = constructor(CaseOpened)
contact_added = constructor(ContactAdded)
charge_awaited = constructor(ChargeAwaited)
charge_linked = constructor(ChargeLinked)
effort_voucher_owed = constructor(EffortVoucherOwed)
decision = constructor(DecisionMade)
case_escalated = constructor(CaseEscalated)
sla_warning = constructor(SlaWarning)
sla_breached = constructor(SlaBreached)
charge_flagged = constructor(ChargeFlagged)
charge_facts = constructor(ChargeFacts)

"""Pure domain of the recovery service: standard library and pydantic only.

The application calls :func:`decide` with a case folded from its stream (:func:`fold`), a
command, ``now``, the policy, the roster and the voucher codes (:class:`VoucherKey`),
appends the events it returns, and keeps the case's :func:`pending_timers` scheduled.
Nothing here does I/O except the two loaders.
"""

from services.recovery.domain.anomaly import assess_charge
from services.recovery.domain.case import Case, apply, case_id_for, fold
from services.recovery.domain.commands import (
    AgentDecide,
    AnyCommand,
    ChargeArrived,
    FileComplaint,
    FireTimer,
    FlagCharge,
)
from services.recovery.domain.decide import decide
from services.recovery.domain.errors import (
    CaseMismatch,
    CaseNotAwaitingAgent,
    CommandRejected,
    ConfigError,
    InvalidAgentDecision,
    InvalidStream,
    PolicyError,
    RecoveryError,
    RemedyRejected,
    RosterError,
)
from services.recovery.domain.events import (
    CASE_EVENT_TYPES,
    ChargeAssessed,
    ChargeAwaited,
    ChargeLinked,
    ContactAdded,
    EffortVoucherOwed,
)
from services.recovery.domain.facts import ChargeFacts, CustomerHistory
from services.recovery.domain.guardrail import is_concession
from services.recovery.domain.policy import Policy, load_policy
from services.recovery.domain.remedies import VoucherCodes, VoucherKey
from services.recovery.domain.roster import Roster, assign_owner, load_roster, supervisor_for
from services.recovery.domain.sla import Timer, pending_timers

__all__ = [
    "CASE_EVENT_TYPES",
    "AgentDecide",
    "AnyCommand",
    "Case",
    "CaseMismatch",
    "CaseNotAwaitingAgent",
    "ChargeArrived",
    "ChargeAssessed",
    "ChargeAwaited",
    "ChargeFacts",
    "ChargeLinked",
    "CommandRejected",
    "ConfigError",
    "ContactAdded",
    "CustomerHistory",
    "EffortVoucherOwed",
    "FileComplaint",
    "FireTimer",
    "FlagCharge",
    "InvalidAgentDecision",
    "InvalidStream",
    "Policy",
    "PolicyError",
    "RecoveryError",
    "RemedyRejected",
    "Roster",
    "RosterError",
    "Timer",
    "VoucherCodes",
    "VoucherKey",
    "apply",
    "assess_charge",
    "assign_owner",
    "case_id_for",
    "decide",
    "fold",
    "is_concession",
    "load_policy",
    "load_roster",
    "pending_timers",
    "supervisor_for",
]

"""The recovery domain's errors, one tree.

::

    RecoveryError                   anything the pure domain refuses
    ├── ConfigError                 a policy or roster file that cannot be used
    │   ├── PolicyError             names the file and the bad field
    │   └── RosterError             names the file and the bad field
    ├── InvalidStream               events that cannot be folded into a case (a bug or a
    │                               corrupted store: never a customer's doing)
    └── CommandRejected             a command the case's state does not allow
        ├── CaseMismatch            the command belongs to another case or charge
        ├── CaseNotAwaitingAgent    an agent decision on a case that is not escalated
        │                           and undecided
        │   └── DecisionPending     ... or whose decision awaits a supervisor's approval
        ├── NoPendingDecision       an approval or rejection with no decision pending
        ├── SelfApproval            a supervisor approving their own proposal (four eyes)
        └── InvalidAgentDecision    neither (or both) remedies and a decline reason
            └── RemedyRejected      a remedy the case's charge does not allow (another
                                    charge, another currency, more than remains on it);
                                    ``field`` names the remedy's field

The application maps ``CommandRejected`` to a 4xx answer on the ops API; a ``ConfigError``
stops the service at start; ``InvalidStream`` is an alarm.
"""

from __future__ import annotations


class RecoveryError(Exception):
    """Base of every error the recovery domain raises."""


class ConfigError(RecoveryError):
    """A configuration file (policy or roster) that cannot be used."""


class PolicyError(ConfigError):
    """A policy file that is missing, not TOML, or fails validation."""


class RosterError(ConfigError):
    """A roster file that is missing, not TOML, or fails validation."""


class InvalidStream(RecoveryError):
    """A sequence of events that does not make a case."""


class CommandRejected(RecoveryError):
    """A command that the case's current state does not allow."""


class CaseMismatch(CommandRejected):
    """The command names a different case (or charge) from the one it was given."""


class CaseNotAwaitingAgent(CommandRejected):
    """An agent decision for a case that is unknown, not escalated, or already decided."""


class DecisionPending(CaseNotAwaitingAgent):
    """A decision for a case whose agent's decision awaits a supervisor's approval."""


class NoPendingDecision(CommandRejected):
    """An approval or a rejection for a case with no decision waiting for one."""


class SelfApproval(CommandRejected):
    """Four eyes: the person who proposed a decision may not approve it."""


class InvalidAgentDecision(CommandRejected):
    """An agent decision must carry remedies or a decline reason, not both, not neither."""


class RemedyRejected(InvalidAgentDecision):
    """A person's remedy that the charge's ledger refuses; ``field`` names it
    (``remedies[1].currency``), and the message starts with it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field

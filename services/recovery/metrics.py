"""Prometheus metrics of the recovery service."""

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter("recovery_decisions_total", "Decisions made, by rule", ["rule"])
ESCALATIONS = Counter("recovery_escalations_total", "Cases escalated to a person")
DEAD_LETTERS = Counter("recovery_dead_letters_total", "Messages sent to the dead-letter topic")
DUPLICATES = Counter("recovery_duplicates_total", "Redelivered messages recognised and skipped")
FLAGGED = Counter("recovery_charges_flagged_total", "Charges flagged as anomalous on arrival")
BATCH_SECONDS = Histogram("recovery_batch_seconds", "Time to handle one batch of Kafka records")
TIMERS_FIRED = Counter("recovery_timers_fired_total", "SLA timers fired")
SLA_MET = Counter("recovery_sla_decisions_total", "Decisions by whether they met the SLA", ["within_sla"])
POISON_ISOLATED = Counter(
    "recovery_poison_isolated_total", "Messages that made handling fail alone, dead-lettered as unprocessable"
)
TRANSIENT_RETRIES = Counter(
    "recovery_transient_retries_total", "Batches read again after a transient failure (a lost database, a deadlock)"
)
# From the filing of a case's first complaint to its decision: the SLA as customers see it.
FILED_TO_DECIDED = Histogram(
    "recovery_filed_to_decided_seconds",
    "Seconds from a case's first complaint being filed to its decision",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600),
)
SLA_WARNINGS = Counter(
    "recovery_sla_warnings_total", "Cases warned of an SLA deadline coming, by priority", ["priority"]
)
SLA_BREACHES = Counter(
    "recovery_sla_breaches_total", "Cases past their SLA deadline undecided, by priority", ["priority"]
)
POLICY_INFO = Gauge("recovery_policy_info", "The decision policy in force (always 1)", ["policy", "version"])
ESCALATIONS_WAITING = Gauge(
    "recovery_escalations_waiting", "Escalated cases waiting for a person's decision, by priority", ["priority"]
)

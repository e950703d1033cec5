"""Prometheus metrics of the recovery service."""

from prometheus_client import Counter, Histogram

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

"""Prometheus metrics of the notifier and the delivery worker (``consumer``: which one)."""

from prometheus_client import Counter

POISON_ISOLATED = Counter(
    "notifier_poison_isolated_total",
    "Messages that made handling fail alone, dead-lettered as unprocessable",
    ["consumer"],
)
TRANSIENT_RETRIES = Counter(
    "notifier_transient_retries_total",
    "Batches read again after a transient failure (a lost database, a deadlock)",
    ["consumer"],
)
DELIVERIES_PRUNED = Counter(
    "notifier_deliveries_pruned_total",
    "Delivery rows deleted NOTIFICATION_RETENTION_DAYS after their outcome",
)
NOT_SENT = Counter(
    "notifier_not_sent_total",
    "Decisions and escalations recorded as not sent, with no email rendered, by reason",
    ["reason"],
)

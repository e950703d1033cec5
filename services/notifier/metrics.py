"""Prometheus metrics of the notifier (``notifier_``) and the delivery worker (``delivery_``);
``consumer`` says which of the two where both count."""

from prometheus_client import Counter, Histogram

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

# The notifier service's emails.
EMAILS_REQUESTED = Counter("notifier_emails_requested_total", "Email requests recorded and queued, one per decision")
EMAILS_RENDERED = Counter(
    "notifier_emails_rendered_total", "Emails rendered from their templates, by template", ["template"]
)

# The delivery worker's.
EMAILS_SENT = Counter("delivery_emails_sent_total", "Emails the mail server accepted")
EMAILS_DEFERRED = Counter("delivery_emails_deferred_total", "Attempts that failed for now, to be tried again later")
EMAILS_FAILED = Counter(
    "delivery_emails_failed_total",
    "Emails given up on, by the class of the mail server's last reply code (4xx, 5xx, none)",
    ["code_class"],
)
RETRY_ATTEMPTS = Counter("delivery_retry_attempts_total", "Attempts after an email's first")
CLAIM_TAKEOVERS = Counter("delivery_claim_takeovers_total", "Claims taken over after their worker's lease ran out")
DECIDED_TO_DELIVERED = Histogram(
    "delivery_decided_to_delivered_seconds",
    "Seconds from a decision to its apology email being accepted by the mail server",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)


def code_class(code: int | None) -> str:
    """``4xx``, ``5xx`` or ``none`` (no reply: a refused connection, a timeout)."""
    return f"{code // 100}xx" if code is not None and 400 <= code < 600 else "none"


NOT_SENT = Counter(
    "notifier_not_sent_total",
    "Decisions and escalations recorded as not sent, with no email rendered, by reason",
    ["reason"],
)

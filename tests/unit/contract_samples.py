"""One valid ``data`` per event type, every optional field filled in, so that a test can
reach any field the contract names (the bound tests set each one to its limit)."""

from __future__ import annotations

from typing import Any

T = "2026-11-22T10:15:00Z"
CUSTOMER = {"id": "cust-0042", "name": "Ana Gómez", "email": "ana@example.com", "locale": "es-CO"}
OWNER = {"id": "agent-7", "name": "Luis Pérez", "email": "luis@example.com"}
REASON = {"code": "late_delivery", "text": "The parcel arrived after the promised date."}

SAMPLES: dict[str, dict[str, Any]] = {
    "billing.charge.posted.v1": {
        "charge_id": "ch-1", "customer_id": "cust-0042", "amount": "7455.00", "currency": "COP",
        "kind": "purchase", "description": "Headphones",
        "product": {"sku": "hp-1", "name": "Headphones", "type": "physical"},
        "order_id": "o-1", "merchant": "Sonido SAS", "posted_at": T,
    },
    "billing.charge.refunded.v1": {
        "charge_id": "ch-1", "refund_id": "rf-1", "amount": "3000", "currency": "JPY",
        "refunded_at": T,
    },
    "complaint.filed.v1": {
        "complaint_id": "cmp-1", "customer": CUSTOMER, "channel": "web",
        "category": "delivery_failed", "charge_id": "ch-1", "order_id": "o-1",
        "claimed_amount": "4.99", "currency": "USD", "purchased_at": T,
        "remedy_preference": "refund", "description": "Never came.", "filed_at": T,
    },
    "recovery.case.opened.v1": {
        "case_id": "case-1", "customer_id": "cust-0042", "complaint_id": "cmp-1",
        "category": "delivery_failed", "case_owner": OWNER, "sla_deadline": T,
    },
    "recovery.decision.made.v1": {
        "case_id": "case-1", "complaint_id": "cmp-1", "customer": CUSTOMER,
        "outcome": "resolved",
        "remedies": [
            {"type": "voucher", "charge_id": "ch-1", "amount": "5.000", "currency": "KWD",
             "voucher_code": "SORRY5", "expires_at": T, "settlement": "3-5 business days"},
            {"type": "refund", "charge_id": "ch-1", "amount": "4.99", "currency": "USD",
             "settlement": "3-5 business days"},
        ],
        "reasons": [REASON], "policy": {"id": "default", "version": "3", "rule": "late-refund"},
        "decided_by": "policy", "case_owner": OWNER, "decided_at": T, "sla_deadline": T,
        "within_sla": True,
    },
    "recovery.case.escalated.v1": {
        "case_id": "case-1", "reason": REASON, "priority": "high", "assignee": "agent-7",
        "due_by": T, "complaint_id": "cmp-1", "customer": CUSTOMER, "case_owner": OWNER,
        "person_due_by": T, "person_warning_at": T,
        "calendar": {"id": "bogota", "version": "1", "zone": "America/Bogota"},
    },
    "recovery.sla.warning.v1": {"case_id": "case-1", "sla_deadline": T, "at": T},
    "recovery.sla.breached.v1": {"case_id": "case-1", "sla_deadline": T, "at": T},
    "recovery.charge.flagged.v1": {
        "charge_id": "ch-1", "customer_id": "cust-0042", "amount": "19.99", "currency": "EUR",
        "reason": REASON,
    },
    "notification.email.requested.v1": {
        "notification_id": "n-1", "case_id": "case-1",
        "to": {"name": "Ana Gómez", "email": "ana@example.com"},
        "reply_to": {"name": "Luis Pérez", "email": "luis@example.com"}, "locale": "es-CO",
        "subject": "Lo sentimos", "text": "Hola Ana", "html": "<p>Hola Ana</p>",
        "template": "decision.resolved", "causation": "evt-1",
    },
    "notification.email.delivered.v1": {"notification_id": "n-1", "at": T},
    "notification.email.failed.v1": {"notification_id": "n-1", "at": T, "error": "550 unknown"},
    "recovery.deadletter.v1": {
        "original": {"topic": "billing.charges", "partition": 0, "offset": 12, "key": "c-1",
                     "value": "not json", "value_encoding": "text", "value_bytes": 8,
                     "value_sha256": "b2a2b4bbd3ba5d8ae4b2fd0a2a3fbcd75a47c3e0a1f9826f3d8e0a5bdcd1c1a0",
                     "truncated": False},
        "error": {"code": "invalid_data", "message": "not valid",
                  "details": [{"loc": "amount", "msg": "not a decimal amount"}]},
        "received_at": T,
    },
}  # fmt: skip

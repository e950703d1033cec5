"""Stable notification ids: the same decision and template always give the same id.

A redelivered event, a restarted notifier or a second notifier instance therefore
produce the same ``notification_id``, and delivery can recognise the duplicate.
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would give every past notification a new id.
NOTIFICATION_NAMESPACE = uuid.UUID("6f1d3a52-0b7e-5c41-9a8e-2d4f7c3b9e10")


def notification_id(event_id: str, template: str) -> str:
    """The UUID (version 5) of one email: over the causing event's id and the template."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{event_id}\x1f{template}"))

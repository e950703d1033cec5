"""The notifier's errors, one tree: the domain's (``services.notifier.domain.errors``) and the
application's::

    NotifierError
    ├── TemplateSetError          a template directory is incomplete or does not parse
    ├── DeliveryError             an email could not be handed to the mail server
    │   ├── TemporaryDeliveryError    4xx, refused connection, timeout: retry later
    │   └── PermanentDeliveryError    5xx: retrying will not help, fail at once
    └── StoreUnavailable          PostgreSQL could not be reached or dropped the connection

``StoreUnavailable`` is transient (:class:`services.common.failures.Transient`): the batch is
handled again later, whole; the client's error is kept as its cause.
"""

from __future__ import annotations

from services.common import failures
from services.notifier.domain.errors import (
    DeliveryError,
    NotifierError,
    PermanentDeliveryError,
    TemplateSetError,
    TemporaryDeliveryError,
)

__all__ = [
    "DeliveryError",
    "NotifierError",
    "PermanentDeliveryError",
    "StoreUnavailable",
    "TemplateSetError",
    "TemporaryDeliveryError",
]


class StoreUnavailable(NotifierError, failures.StoreUnavailable):
    """PostgreSQL could not be reached, or the connection broke mid-transaction."""

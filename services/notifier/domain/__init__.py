"""Pure domain: decision -> apology (templates, locales, ids) and the retry schedule.

Imports only the standard library, pydantic, jinja2, babel and the wire contract
(``services.common.contract``): no broker, driver or logger. A unit test walks the AST of
every module here to keep it so.
"""

from services.notifier.domain.compose import compose
from services.notifier.domain.errors import (
    DeliveryError,
    NotifierError,
    PermanentDeliveryError,
    TemplateSetError,
    TemporaryDeliveryError,
)
from services.notifier.domain.ids import notification_id
from services.notifier.domain.ports import EmailSender
from services.notifier.domain.retry import backoff_delays, is_permanent_reply, retry_span
from services.notifier.domain.templates import TEMPLATE_NAMES, TemplateSet, load_templates

__all__ = [
    "TEMPLATE_NAMES",
    "DeliveryError",
    "EmailSender",
    "NotifierError",
    "PermanentDeliveryError",
    "TemplateSet",
    "TemplateSetError",
    "TemporaryDeliveryError",
    "backoff_delays",
    "compose",
    "is_permanent_reply",
    "load_templates",
    "notification_id",
    "retry_span",
]

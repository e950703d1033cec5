"""The contract's bounds: how long a string, how many items in a list, how deep ``data``.

One constant per kind of value, used by every model field of that kind. The amount bounds
live with money (:mod:`services.common.contract.money`). ``docs/limits.md`` and the JSON
Schemas in ``schemas/`` are generated from the models that use these, so they cannot drift.

Why these numbers:

- An id goes into PostgreSQL keys (the inbox, the event store's streams, the read models),
  and a btree index row is limited to about 2,700 bytes. Two ids of 200 characters, each
  up to 4 bytes in UTF-8, stay far below that, and 200 is room for any real id (a UUID
  is 36).
- An email address: 254 characters, the most an SMTP path allows (RFC 5321).
- A locale: 35 characters, the length BCP 47 asks every implementation to support.
- A Kafka topic name: 249 characters, Kafka's own limit.
- A rendered email can be long (every reason and remedy, in HTML): its text and HTML are
  bounded generously, at 200,000 characters each.
"""

from __future__ import annotations

from typing import Final

MAX_EVENT_BYTES: Final = 1_000_000
"""A whole Kafka value; a larger one is refused before it is parsed."""

MAX_DATA_DEPTH: Final = 32
"""How deeply ``data`` may nest objects and arrays (``data`` itself is level 1)."""

MAX_ID_LENGTH: Final = 200
"""Every id: the envelope's ``id``, ``subject``, ``correlationid``, ``causationid``, and
every ``*_id`` in data. Ids go into database keys."""

MAX_NAME_LENGTH: Final = 256
"""Names of people, products and merchants, and short labels (codes, versions, templates,
event types, media types)."""

MAX_SOURCE_LENGTH: Final = 512
"""The envelope's ``source`` (a URI reference)."""

MAX_EMAIL_LENGTH: Final = 254
MAX_LOCALE_LENGTH: Final = 35
MAX_TOPIC_LENGTH: Final = 249

MAX_TEXT_LENGTH: Final = 2_000
"""Short free text: a reason, a charge's description, a delivery error, a dead letter's
message."""

MAX_COMPLAINT_TEXT_LENGTH: Final = 10_000
"""A complaint's description, in the customer's own words."""

MAX_EMAIL_SUBJECT_LENGTH: Final = 500
MAX_EMAIL_BODY_LENGTH: Final = 200_000
"""The text and the HTML of a rendered email, each."""

MAX_LIST_ITEMS: Final = 20
"""The remedies of a decision, and its reasons."""

MAX_ERROR_DETAILS: Final = 50
"""The details of a dead letter's error (one per field that failed)."""

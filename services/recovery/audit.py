"""The audit trail: who did what to which case, when, and from which client.

Recorded: every decision, approval and rejection by a person (with whether it carried a
note, never the note), the people's changes on the command line (``agents add``,
``disable``, ``token``) and every read of cases through the ops API. A record names the
verified identity (a person's id and role, or the service credential), the service clock's
time, the action, the case id and a target (an outcome, a proposer, a person's id), and the
client: the HTTP peer's address and User-Agent (bounded, control characters dropped), or
``cli`` and the operating-system user. Ids only: no customer name, email, note or token.

Records are ``recovery.audit.recorded.v1`` events (internal: never published, not part of
the contract) on one stream per UTC day of the service clock, ``audit-YYYY-MM-DD``.

Why a day's stream cannot lose a record under concurrency: audit records are appended at
:data:`ANY_VERSION`, so an append never checks an expected version and never fails with a
concurrency error. The event store takes its append lock before it reads the stream's head
(``event_store_append_state``), so concurrent appends to the same day's stream are
serialised and each gets the next version; none is refused, none overwrites another. A
person's decision appends its record in the same append (one transaction) as the decision's
events, so neither commits without the other; a read's record is appended in its own
transaction before the answer is sent, and a read whose record cannot be written fails.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from services.common.eventstore import ANY_VERSION, AppendRequest, NewEvent
from services.common.eventstore.postgres import append_on

AUDIT_TYPE = "recovery.audit.recorded.v1"
AUDIT_PREFIX = "audit-"
MAX_ADDRESS = 64
MAX_USER_AGENT = 200
MAX_OS_USER = 64

ClientKind = Literal["http", "cli", "app"]


def audit_stream(at: datetime) -> str:
    """The stream of the records made on ``at``'s UTC day."""
    return f"{AUDIT_PREFIX}{at.astimezone(UTC).date().isoformat()}"


def bounded(value: str | None, limit: int) -> str | None:
    """``value`` without control characters, cut at ``limit`` characters (None stays None)."""
    if value is None:
        return None
    printable = "".join(c for c in value if c.isprintable())
    return printable[:limit] or None


@dataclass(frozen=True)
class Client:
    """Where a request came from: an HTTP peer, the command line, or the process itself (a
    caller that named no client: tests, simulations)."""

    kind: ClientKind
    address: str | None = None
    agent: str | None = None  # the User-Agent, or the operating-system user on the command line

    @classmethod
    def http(cls, address: str | None, user_agent: str | None) -> Client:
        return cls("http", bounded(address, MAX_ADDRESS), bounded(user_agent, MAX_USER_AGENT))

    @classmethod
    def cli(cls) -> Client:
        try:
            user: str | None = getpass.getuser()
        except (KeyError, OSError):  # no name for the process's uid
            user = None
        return cls("cli", None, bounded(user, MAX_OS_USER))

    def label(self) -> str:
        return " ".join(p for p in (self.kind, self.address, self.agent) if p)


IN_PROCESS = Client("app")


@dataclass(frozen=True)
class AuditRecord:
    """One audited action. ``person`` is None for the service credential and the command
    line's operator (whose ``role`` is then ``service`` or ``operator``)."""

    at: datetime
    person: str | None
    role: str
    action: str
    client: Client
    case_id: str | None = None
    target: str | None = None
    note: bool = False

    def data(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "person": self.person,
            "role": self.role,
            "action": self.action,
            "case_id": self.case_id,
            "target": self.target,
            "note": self.note,
            "client": {"kind": self.client.kind, "address": self.client.address, "agent": self.client.agent},
        }

    @classmethod
    def of(cls, data: Mapping[str, Any], at: datetime) -> AuditRecord:
        c = data.get("client") or {}
        return cls(at=at, person=data.get("person"), role=str(data.get("role")), action=str(data.get("action")),
                   client=Client(c.get("kind", "app"), c.get("address"), c.get("agent")),
                   case_id=data.get("case_id"), target=data.get("target"), note=bool(data.get("note")))  # fmt: skip

    def request(self, event_id: str | None = None) -> AppendRequest:
        """The append of this record to its day's stream (at ANY_VERSION: see the module's
        docstring). ``event_id``: a deterministic id when the record belongs to a retried
        transaction; a fresh one otherwise."""
        event = NewEvent(event_id or str(uuid.uuid4()), AUDIT_TYPE, self.data(), self.at)
        return AppendRequest(audit_stream(self.at), ANY_VERSION, [event])


async def record(db: asyncpg.Pool | asyncpg.Connection, entry: AuditRecord) -> None:
    """Append ``entry`` in a transaction of its own (the caller's, when ``db`` is a
    connection in one)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            await append_on(conn, [entry.request()])
    else:
        async with db.transaction():
            await append_on(db, [entry.request()])

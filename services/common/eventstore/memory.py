"""The in-memory twin of the event store, for unit tests and the what-if simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from services.common.eventstore.model import AppendRequest, ConcurrencyError, RecordedEvent


class MemoryEventStore:
    def __init__(self) -> None:
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._ids: set[str] = set()
        self._lock = asyncio.Lock()

    async def append(self, requests: Sequence[AppendRequest]) -> list[RecordedEvent]:
        async with self._lock:
            return self.append_now(requests)

    def append_now(self, requests: Sequence[AppendRequest]) -> list[RecordedEvent]:
        """Synchronous append (all-or-nothing), for single-threaded simulations."""
        now = datetime.now(UTC)
        seen = set(self._ids)
        versions: dict[str, int] = {}
        head = len(self._log)
        recorded: list[RecordedEvent] = []
        for request in requests:
            fresh = []
            for e in request.events:
                if e.event_id not in seen:
                    seen.add(e.event_id)
                    fresh.append(e)
            if not fresh:
                continue
            current = versions.get(request.stream_id, len(self._streams.get(request.stream_id, [])))
            if request.expected_version is not None and request.expected_version != current:
                raise ConcurrencyError(request.stream_id, request.expected_version, current)
            for e in fresh:
                current += 1
                head += 1
                recorded.append(
                    RecordedEvent(head, request.stream_id, current, e.event_id, e.event_type,
                                  e.data, e.metadata, e.occurred_at, now)
                )  # fmt: skip
            versions[request.stream_id] = current
        for r in recorded:
            self._log.append(r)
            self._streams.setdefault(r.stream_id, []).append(r)
            self._ids.add(r.event_id)
        return recorded

    def held(self, event_ids: Sequence[str]) -> set[str]:
        """Those of ``event_ids`` the store holds."""
        return self._ids.intersection(event_ids)

    def snapshot(self) -> tuple[int, int]:
        """A mark to :meth:`restore` (the log's and the id set's sizes): what a transaction
        that rolls back undoes."""
        return len(self._log), len(self._ids)

    def restore(self, mark: tuple[int, int]) -> None:
        """Forget every event appended since :meth:`snapshot` gave ``mark``."""
        for r in self._log[mark[0] :]:
            self._streams[r.stream_id].pop()
            if not self._streams[r.stream_id]:
                del self._streams[r.stream_id]
            self._ids.discard(r.event_id)
        del self._log[mark[0] :]

    async def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        return [e for e in self._streams.get(stream_id, []) if e.version >= from_version]

    async def read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        return {s: list(self._streams.get(s, [])) for s in stream_ids}

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        out: list[RecordedEvent] = []
        for e in self._log[after_position:]:
            if types is not None and e.event_type not in types:
                continue
            if since is not None and e.occurred_at < since:
                continue
            if until is not None and e.occurred_at >= until:
                continue
            out.append(e)
            if len(out) >= limit:
                break
        return out

    async def head_position(self) -> int:
        return len(self._log)

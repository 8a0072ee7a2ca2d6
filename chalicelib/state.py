"""State: a versioned key-value store with compare-and-set, and the transition runner.

Every piece of alerting state (event claims, incidents, failure histories, token buckets, storms,
Identity Center workflows) is one JSON document under one key. A transition is a pure function
``document -> (new document, result)`` (see :mod:`chalicelib.decisions`); :func:`transact` reads
the document and its version, applies the function and writes the result *conditionally on the
version it read*. A concurrent writer makes the condition fail and the transition is re-run on
fresh data, so there is no read-modify-write race, and the same transition code runs on DynamoDB
in Lambda and on :class:`MemoryStore` in replay.

Expiry is checked on read. DynamoDB's TTL deletes expired items "typically within a few days"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html), so an
expired item may still be there: :meth:`StateStore.get` reports it as absent but keeps its version,
and the next write replaces it conditionally on that version.

Timeline of one key (incident, 15-minute window)::

    09:00:08 event A  -> get: absent         -> put v1 (alert A, window to 09:15:08)
    09:00:27 event B  -> get: v1              -> put v2 if v==1 (repeat 1)
    09:00:27 event B' -> get: v1 (concurrent) -> put if v==1 fails -> get v2 -> put v3 (repeat 2)
    09:15:08 due      -> scheduler closes it: put v4 with the summary in its outbox
    09:16:00 delivered-> put v5 (outbox empty); expires_at = window end + grace, TTL deletes later
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .errors import StateStoreError

Document = dict[str, Any]
R = TypeVar("R")

#: How often a transition is retried when concurrent writers keep winning.
MAX_ATTEMPTS = 25


@dataclass(frozen=True)
class Versioned:
    """A read: the live document (None when absent or expired) and the stored version."""

    document: Document | None
    version: int | None
    """None when nothing is stored; set for an expired document that TTL has not deleted yet."""


class StateStore(Protocol):
    """What the alerting logic needs from storage. Implementations: memory, DynamoDB."""

    calls: int
    """Storage round trips so far (benchmarks report calls per event)."""

    def get(self, key: str, now: float) -> Versioned:
        """The document under ``key``; expired documents read as absent (keeping their version)."""
        ...

    def put(
        self,
        key: str,
        document: Document,
        expected_version: int | None,
        expires_at: float,
        due_at: float | None,
    ) -> bool:
        """Write if the stored version is ``expected_version`` (None: nothing stored).

        Returns False when the condition failed. ``due_at`` indexes the key for :meth:`due`.
        """
        ...

    def due(self, until: float, now: float) -> list[str]:
        """Live keys whose ``due_at`` is at or before ``until`` (work for the scheduler)."""
        ...


@dataclass(frozen=True)
class Write:
    """What a transition wants stored."""

    document: Document
    expires_at: float
    due_at: float | None = None


Transition = Callable[[Document | None], tuple[Write | None, R]]


def transact(store: StateStore, key: str, now: float, transition: Transition[R]) -> R:
    """Apply ``transition`` to the document under ``key`` with compare-and-set; return its result.

    ``transition`` must be pure: it may run several times when writers race. A ``None`` write
    means "nothing to change".
    """
    for _ in range(MAX_ATTEMPTS):
        current = store.get(key, now)
        write, result = transition(current.document)
        if write is None:
            return result
        if store.put(key, write.document, current.version, write.expires_at, write.due_at):
            return result
    raise StateStoreError(f"{key}: gave up after {MAX_ATTEMPTS} conflicting concurrent writes")


class MemoryStore:
    """The in-memory store used by replay and tests: same semantics as DynamoDB, thread-safe."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[int, str, float, float | None]] = {}
        # (due_at, key) for every write with a due time; stale entries are skipped on read, so
        # finding due work costs O(log n) per entry instead of a scan (replay ticks per event).
        self._due: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.calls = 0

    def get(self, key: str, now: float) -> Versioned:
        with self._lock:
            self.calls += 1
            stored = self._items.get(key)
        if stored is None:
            return Versioned(None, None)
        version, text, expires_at, _ = stored
        if expires_at <= now:
            return Versioned(None, version)
        # A copy, as a database read would give: transitions must not share mutable state.
        return Versioned(json.loads(text), version)

    def put(
        self,
        key: str,
        document: Document,
        expected_version: int | None,
        expires_at: float,
        due_at: float | None,
    ) -> bool:
        text = json.dumps(document, sort_keys=True)
        with self._lock:
            self.calls += 1
            stored = self._items.get(key)
            version = stored[0] if stored else None
            if version != expected_version:
                return False
            self._items[key] = ((version or 0) + 1, text, expires_at, due_at)
            if due_at is not None:
                heapq.heappush(self._due, (due_at, key))
            return True

    def due(self, until: float, now: float) -> list[str]:
        with self._lock:
            self.calls += 1
            keys: set[str] = set()
            while self._due and self._due[0][0] <= until:
                due_at, key = heapq.heappop(self._due)
                stored = self._items.get(key)
                if stored is not None and stored[3] == due_at and stored[2] > now:
                    keys.add(key)
            # Handing out a key does not clear it: whoever handles it writes a new due time
            # (or none). Re-index what was handed out so an unhandled key is not forgotten.
            for key in keys:
                heapq.heappush(self._due, (self._items[key][3] or until, key))
            return sorted(keys)

    def next_due(self) -> float | None:
        """The earliest due time of a live key, or None (stale index entries are dropped)."""
        with self._lock:
            while self._due:
                due_at, key = self._due[0]
                stored = self._items.get(key)
                if stored is not None and stored[3] == due_at:
                    return due_at
                heapq.heappop(self._due)
            return None

    def __len__(self) -> int:
        return len(self._items)

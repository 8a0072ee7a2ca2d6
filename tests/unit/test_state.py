"""MemoryStore and transact: compare-and-set, expiry on read, the due index, conflict retries."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.errors import StateStoreError
from chalicelib.state import MAX_ATTEMPTS, Document, MemoryStore, Versioned, Write, transact


def test_put_when_absent_then_conditional_on_version() -> None:
    store = MemoryStore()
    assert store.put("k", {"n": 1}, None, expires_at=100.0, due_at=None)
    assert store.get("k", 0.0) == Versioned({"n": 1}, 1)
    assert not store.put("k", {"n": 2}, None, 100.0, None), "key exists: 'absent' must fail"
    assert not store.put("k", {"n": 2}, 7, 100.0, None), "wrong version must fail"
    assert store.put("k", {"n": 2}, 1, 100.0, None)
    assert store.get("k", 0.0) == Versioned({"n": 2}, 2)
    assert store.calls == 6


def test_expired_document_reads_as_absent_but_keeps_its_version() -> None:
    store = MemoryStore()
    store.put("k", {"n": 1}, None, expires_at=50.0, due_at=None)
    assert store.get("k", 49.9).document == {"n": 1}
    expired = store.get("k", 50.0)
    assert expired == Versioned(None, 1)
    # The next writer replaces it conditionally on the version it saw, not on "absent".
    assert not store.put("k", {"n": 9}, None, 500.0, None)
    assert store.put("k", {"n": 9}, expired.version, 500.0, None)
    assert store.get("k", 60.0) == Versioned({"n": 9}, 2)


def test_reads_are_copies() -> None:
    store = MemoryStore()
    store.put("k", {"items": [1]}, None, 100.0, None)
    document = store.get("k", 0.0).document
    assert document is not None
    document["items"].append(2)
    assert store.get("k", 0.0).document == {"items": [1]}


def test_due_index_returns_live_due_keys_until_they_are_rewritten() -> None:
    store = MemoryStore()
    store.put("a", {}, None, expires_at=1000.0, due_at=10.0)
    store.put("b", {}, None, expires_at=1000.0, due_at=20.0)
    store.put("c", {}, None, expires_at=15.0, due_at=12.0)  # expires before it is looked at
    store.put("d", {}, None, expires_at=1000.0, due_at=None)
    assert store.next_due() == 10.0
    assert store.due(until=9.0, now=9.0) == []
    assert store.due(until=20.0, now=16.0) == ["a", "b"]
    # Handing a key out does not clear it: an unhandled key is found again.
    assert store.due(until=20.0, now=16.0) == ["a", "b"]
    # Rewriting without a due time takes it out of the index; a later due time defers it.
    store.put("a", {}, 1, 1000.0, None)
    store.put("b", {}, 1, 1000.0, 30.0)
    assert store.due(until=25.0, now=25.0) == []
    assert store.due(until=30.0, now=25.0) == ["b"]


def test_transact_creates_updates_and_skips_no_op_writes() -> None:
    store = MemoryStore()

    def increment(doc: Document | None) -> tuple[Write | None, int]:
        n = (doc or {}).get("n", 0) + 1
        return Write({"n": n}, 100.0), n

    assert transact(store, "k", 0.0, increment) == 1
    assert transact(store, "k", 0.0, increment) == 2
    calls = store.calls

    def read(doc: Document | None) -> tuple[Write | None, Any]:
        return None, doc

    assert transact(store, "k", 0.0, read) == {"n": 2}
    assert store.calls == calls + 1, "a read-only transition is one get, no put"


class _RacingStore(MemoryStore):
    """A store where another writer sneaks in between every get and put, ``races`` times."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def get(self, key: str, now: float) -> Versioned:
        read = super().get(key, now)
        if self.races > 0:
            self.races -= 1
            MemoryStore.put(self, key, {"n": 100 + self.races}, read.version, 1000.0, None)
        return read


def test_transact_reruns_the_transition_on_fresh_data_after_a_conflict() -> None:
    store = _RacingStore(races=3)
    seen: list[Any] = []

    def increment(doc: Document | None) -> tuple[Write | None, int]:
        seen.append(doc)
        n = (doc or {}).get("n", 0) + 1
        return Write({"n": n}, 1000.0), n

    assert transact(store, "k", 0.0, increment) == 101
    assert seen == [None, {"n": 102}, {"n": 101}, {"n": 100}]
    assert store.get("k", 0.0) == Versioned({"n": 101}, 4)


def test_transact_gives_up_after_max_attempts() -> None:
    store = _RacingStore(races=MAX_ATTEMPTS)

    def write(doc: Document | None) -> tuple[Write | None, None]:
        return Write({"n": 0}, 1000.0), None

    with pytest.raises(StateStoreError, match=f"k: gave up after {MAX_ATTEMPTS}"):
        transact(store, "k", 0.0, write)


def test_concurrent_increments_are_not_lost() -> None:
    store = MemoryStore()

    def increment(doc: Document | None) -> tuple[Write | None, None]:
        return Write({"n": (doc or {}).get("n", 0) + 1}, 1000.0), None

    def work() -> None:
        for _ in range(200):
            transact(store, "k", 0.0, increment)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("k", 0.0).document == {"n": 1600}

"""State: small items, each changed by one conditional or atomic request, never a hot document.

Every piece of alerting state lives in one item of one table (DynamoDB in Lambda,
:class:`MemoryStore` in replay and tests). A key is ``<kind>#<parts>`` with its kind from
:class:`KeyKind`; :mod:`chalicelib.documents` gives each kind a typed view. The store offers the
four requests the service needs, each **one** round trip:

* :meth:`StateStore.get` - a consistent read;
* :meth:`StateStore.put` - a whole-item write, optionally conditional;
* :meth:`StateStore.update` - set / atomic add / list append / remove attributes, optionally
  conditional, returning the item as written (``ReturnValues=ALL_NEW``). A failed condition raises
  :class:`ConditionFailed` carrying the item as it is (``ReturnValuesOnConditionCheckFailure``), so
  the caller learns why without a second read;
* :meth:`StateStore.query_group` - the items of a group (the sparse ``group`` index) written within
  a time range: per-event items that the scheduler merges into summaries and storm digests, so no
  event ever rewrites a shared document.

Expiry: DynamoDB's TTL deletes expired items "typically within a few days"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html), so an
expired item may still be there. Reads report it as absent and :class:`Absent` conditions accept
it; the due index still lists it, and the scheduler takes it out.
"""

from __future__ import annotations

import copy
import enum
import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import StateStoreError

Item = dict[str, Any]
"""An item's attributes: str, bool, int, float, list, dict, set of str (a DynamoDB string set)."""

#: The attributes of the sparse indexes (an item is in an index only while they are set).
DUE_PK, DUE_AT = "due_pk", "due_at"
GROUP_PK, GROUP_AT = "grp_pk", "grp_at"
DUE_PARTITION = "due"
EXPIRES_AT = "expires_at"


class KeyKind(enum.Enum):
    """What an item is, by the first part of its key."""

    EVENT = "evt"
    """One (rule, eventID): the exactly-once claim, the decision and its delivery progress."""
    INCIDENT = "inc"
    """One (rule, dedup key): the current incident window and its leading event."""
    PRINCIPAL = "prn"
    """One (account, principal): recent failures, escalations, the principal's rate counter."""
    RATE = "rate"
    """The topic's rate counters and which rules are in storm mode."""
    STORM = "storm"
    """One rule's held notifications: when the next digest is due, digest progress."""
    HELD = "held"
    """One notification held by the scheduler (a summary), merged into its rule's digest."""
    WORKFLOW = "wf"
    """One Identity Center AuthWorkflowID: who signed in."""
    HEARTBEAT = "hb"
    """One account x Region: when its heartbeat was last seen."""


def make_key(kind: KeyKind, *parts: str) -> str:
    return "#".join((kind.value, *parts))


def key_kind(key: str) -> KeyKind | None:
    """The kind of a key, or None for a key this version does not know (it is parked)."""
    try:
        return KeyKind(key.split("#", 1)[0])
    except ValueError:
        return None


def key_parts(key: str) -> list[str]:
    """The parts after the kind (``evt#rule#id`` -> ``[rule, id]``); ids may contain ``#``."""
    return key.split("#")[1:]


# --- conditions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Absent:
    """The item does not exist, or has expired (TTL has not deleted it yet)."""


@dataclass(frozen=True)
class Compare:
    """``attribute <op> value``; a missing attribute satisfies it only when ``or_missing``."""

    attribute: str
    op: str  # one of = <> < <= > >=
    value: Any
    or_missing: bool = False


@dataclass(frozen=True)
class Missing:
    """The item has no such attribute (or does not exist)."""

    attribute: str


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]


Condition = Absent | Missing | Compare | AnyOf | AllOf

_OPS = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def holds(condition: Condition, item: Item | None, now: float) -> bool:
    """Evaluate a condition on an item (None: absent) the way DynamoDB does."""
    if isinstance(condition, Absent):
        return item is None or float(item.get(EXPIRES_AT, 0)) <= now
    if isinstance(condition, Missing):
        return item is None or condition.attribute not in item
    if isinstance(condition, AnyOf):
        return any(holds(c, item, now) for c in condition.conditions)
    if isinstance(condition, AllOf):
        return all(holds(c, item, now) for c in condition.conditions)
    if item is None or condition.attribute not in item:
        return condition.or_missing
    value = item[condition.attribute]
    try:
        return bool(_OPS[condition.op](value, condition.value))
    except TypeError:
        return False  # DynamoDB: comparing different types is false


class ConditionFailed(Exception):
    """A conditional write did not happen. ``current`` is the item as stored (None: absent or
    expired), so the caller can decide what it means without reading again."""

    def __init__(self, key: str, current: Item | None) -> None:
        super().__init__(f"condition failed on {key}")
        self.key = key
        self.current = current


# --- the store -------------------------------------------------------------------------------


class StateStore(Protocol):
    """What the alerting logic needs from storage. Implementations: memory, DynamoDB."""

    calls: int
    """Storage requests so far (benchmarks report requests per delivery)."""

    def get(self, key: str, now: float) -> Item | None:
        """The live item (None when absent or expired). Strongly consistent."""
        ...

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        """Replace the whole item; raises :class:`ConditionFailed` when ``condition`` fails."""
        ...

    def update(
        self,
        key: str,
        now: float,
        *,
        set_values: Mapping[str, Any] | None = None,
        add: Mapping[str, int | float | frozenset[str]] | None = None,
        append: Mapping[str, list[Any]] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        """Change some attributes in one request; returns the item as written.

        ``add`` adds to a number (missing counts as 0) or to a string set; ``append`` appends to a
        list (missing counts as empty). Raises :class:`ConditionFailed` when ``condition`` fails.
        """
        ...

    def query_group(self, group: str, after: float, until: float) -> list[Item]:
        """Items whose ``grp_pk`` is ``group`` and ``after < grp_at <= until``, oldest first."""
        ...

    def due(self, until: float, now: float) -> list[str]:
        """Keys of live items whose ``due_at`` is at or before ``until``."""
        ...


def due_mark(at: float) -> dict[str, Any]:
    """The attributes that put an item in the due index at ``at``."""
    return {DUE_PK: DUE_PARTITION, DUE_AT: float(at)}


def group_mark(group: str, at: float) -> dict[str, Any]:
    """The attributes that put an item in ``group`` at ``at`` (:meth:`StateStore.query_group`)."""
    return {GROUP_PK: group, GROUP_AT: float(at)}


class MemoryStore:
    """The in-memory store used by replay and tests: the same semantics as DynamoDB, thread-safe."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        # (due_at, key) for every write with a due time; stale entries are skipped on read, so
        # finding due work costs O(log n) per entry instead of a scan (replay ticks per event).
        self._due: list[tuple[float, str]] = []
        self._groups: dict[str, list[tuple[float, str]]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def _live(self, key: str, now: float) -> Item | None:
        item = self._items.get(key)
        if item is None or float(item.get(EXPIRES_AT, 0)) <= now:
            return None
        return item

    def get(self, key: str, now: float) -> Item | None:
        with self._lock:
            self.calls += 1
            item = self._live(key, now)
            return copy.deepcopy(item) if item is not None else None

    def _check(self, key: str, condition: Condition | None, now: float) -> None:
        stored = self._items.get(key)
        if condition is not None and not holds(condition, stored, now):
            live = self._live(key, now)
            raise ConditionFailed(key, copy.deepcopy(live) if live is not None else None)

    def _index(self, key: str, item: Item) -> None:
        if DUE_AT in item:
            heapq.heappush(self._due, (float(item[DUE_AT]), key))
        if GROUP_PK in item:
            self._groups.setdefault(str(item[GROUP_PK]), []).append((float(item[GROUP_AT]), key))

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        with self._lock:
            self.calls += 1
            self._check(key, condition, now)
            stored = copy.deepcopy(item)
            stored["pk"] = key
            self._items[key] = stored
            self._index(key, stored)

    def update(
        self,
        key: str,
        now: float,
        *,
        set_values: Mapping[str, Any] | None = None,
        add: Mapping[str, int | float | frozenset[str]] | None = None,
        append: Mapping[str, list[Any]] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        with self._lock:
            self.calls += 1
            self._check(key, condition, now)
            item = copy.deepcopy(self._items.get(key, {}))
            item["pk"] = key
            for name, value in (set_values or {}).items():
                item[name] = copy.deepcopy(value)
            for name, amount in (add or {}).items():
                if isinstance(amount, frozenset):
                    item[name] = set(item.get(name, set())) | set(amount)
                else:
                    item[name] = item.get(name, 0) + amount
            for name, values in (append or {}).items():
                item[name] = [*item.get(name, []), *copy.deepcopy(values)]
            for name in remove:
                item.pop(name, None)
            self._items[key] = item
            if set_values and (DUE_AT in set_values or GROUP_PK in set_values):
                self._index(key, item)
            return copy.deepcopy(item)

    def query_group(self, group: str, after: float, until: float) -> list[Item]:
        with self._lock:
            self.calls += 1
            found: dict[str, Item] = {}
            for at, key in self._groups.get(group, []):
                item = self._items.get(key)
                if (
                    after < at <= until
                    and item is not None
                    and item.get(GROUP_PK) == group
                    and float(item[GROUP_AT]) == at
                ):
                    found[key] = copy.deepcopy(item)
            return sorted(found.values(), key=lambda i: (float(i[GROUP_AT]), str(i["pk"])))

    def due(self, until: float, now: float) -> list[str]:
        with self._lock:
            self.calls += 1
            keys: set[str] = set()
            while self._due and self._due[0][0] <= until:
                due_at, key = heapq.heappop(self._due)
                item = self._items.get(key)
                if item is not None and item.get(DUE_AT) == due_at:
                    keys.add(key)
            # Handing a key out does not clear it: whoever handles it writes a new due time (or
            # none). Re-index what was handed out so an unhandled key is not forgotten.
            for key in keys:
                heapq.heappush(self._due, (float(self._items[key][DUE_AT]), key))
            # Like DynamoDB's index, expired items are still listed; the scheduler clears them.
            return sorted(keys)

    def next_due(self) -> float | None:
        """The earliest due time of any item (stale index entries are dropped)."""
        with self._lock:
            while self._due:
                due_at, key = self._due[0]
                item = self._items.get(key)
                if item is not None and item.get(DUE_AT) == due_at:
                    return due_at
                heapq.heappop(self._due)
            return None

    def __len__(self) -> int:
        return len(self._items)


def require(item: Item | None, key: str) -> Item:
    """An item the caller just wrote or read; its absence is a store fault."""
    if item is None:
        raise StateStoreError(f"{key}: item vanished")
    return item

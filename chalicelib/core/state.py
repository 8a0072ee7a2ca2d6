"""State: small items, each changed by one conditional or atomic request, never a hot document.

Every piece of alerting state lives in one item of one table (DynamoDB in Lambda,
:class:`MemoryStore` in replay and tests). A key is ``<kind>#<parts>`` with its kind from
:class:`KeyKind`; :mod:`chalicelib.core.documents` gives each kind a typed view. The store offers
the four requests the service needs, each **one** round trip:

* :meth:`StateStore.get` - a consistent read;
* :meth:`StateStore.put` - a whole-item write, optionally conditional;
* :meth:`StateStore.update` - set / atomic add / list append / remove attributes, optionally
  conditional, returning the item as written (``ReturnValues=ALL_NEW``). A failed condition raises
  :class:`ConditionFailed` carrying the item as it is (``ReturnValuesOnConditionCheckFailure``), so
  the caller learns why without a second read;
* :meth:`StateStore.query_group` - the items of a group (the sparse ``group`` index) written within
  a time range: per-event items that the scheduler merges into summaries and storm digests, so no
  event ever rewrites a shared document.

Expiry: DynamoDB's TTL deletes expired items in the background, typically within a few days
(two days, says the UpdateTimeToLive reference), and an item that has expired but is not deleted
yet still shows up in reads, queries and scans unless a filter leaves it out
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ttl-expired-items.html). So
every read filters: :meth:`StateStore.get` and :meth:`StateStore.query_group` report an expired
item as absent, :class:`Absent` conditions accept it; the due index (keys only, it cannot filter)
still lists it, and the scheduler takes it out.

Index lag: every read of a global secondary index is eventually consistent
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html);
a write usually shows up in the index within a second, later on a large or busy table, and AWS
gives no upper bound. So a ``group`` entry may appear late: the scheduler compares what the index
shows with what it has counted (see :mod:`chalicelib.pipeline.scheduler`); :class:`MemoryStore` can
model the lag (``index_lag``).

Keys: a partition key value is at most 2048 bytes and an item at most 400 KB
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html). Keys are
built from event fields (user names, event ids, dedup keys), so :func:`make_key` bounds every
part: whatever the input, a key stays far below the limit, and two different inputs never make
the same key.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import json
import threading
from collections.abc import Callable, Mapping, Sequence
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
    NOTICE = "notice"
    """One (suppression, expiry date): its expiry notice, sent once (the item is the mark)."""
    CAMPAIGN = "camp"
    """One (campaign, source IP): its distinct members and escalation; with a member part, the
    marker that the member is counted (:mod:`chalicelib.core.campaigns`)."""


#: DynamoDB's limit on a partition key's value (UTF-8 bytes); GSI keys have the same limit.
MAX_KEY_BYTES = 2048
#: DynamoDB's limit on an item (names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024
#: The longest key part kept as it is (UTF-8 bytes); longer parts are cut and hashed.
MAX_KEY_PART_BYTES = 256
#: Marks a part that was cut and hashed. A part that contains it is hashed too, so a raw part can
#: never equal the bounded form of another one: different inputs, different keys.
HASHED_MARK = "~h:"
_KEEP_BYTES = MAX_KEY_PART_BYTES - len(HASHED_MARK) - 64  # 64: a SHA-256 in hex


def key_part(value: str) -> str:
    """A key part of bounded size: ``value`` itself when short, else a readable prefix and the
    SHA-256 of the whole value (at most :data:`MAX_KEY_PART_BYTES` bytes)."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_PART_BYTES and HASHED_MARK not in value:
        return value
    prefix = raw[:_KEEP_BYTES].decode("utf-8", "ignore").replace(HASHED_MARK, "")
    return f"{prefix}{HASHED_MARK}{hashlib.sha256(raw).hexdigest()}"


def make_key(kind: KeyKind, *parts: str) -> str:
    """``<kind>#<part>#...``, every part bounded (:func:`key_part`): no event can make a key
    exceed DynamoDB's 2048 bytes, whatever its user name, dedup key or event id."""
    return "#".join((kind.value, *(key_part(p) for p in parts)))


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


def expired(item: Mapping[str, Any], now: float) -> bool:
    """Whether the item's TTL has passed (it may still be stored: deletion is lazy). Like
    DynamoDB's TTL, an item without the attribute never expires."""
    return EXPIRES_AT in item and float(item[EXPIRES_AT]) <= now


def holds(condition: Condition, item: Item | None, now: float) -> bool:
    """Evaluate a condition on an item (None: absent) the way DynamoDB does."""
    if isinstance(condition, Absent):
        return item is None or expired(item, now)
    if isinstance(condition, Missing):
        return item is None or condition.attribute not in item
    if isinstance(condition, AnyOf | AllOf):
        combine = any if isinstance(condition, AnyOf) else all
        return combine(holds(c, item, now) for c in condition.conditions)
    return _compares(condition, item)


def _compares(condition: Compare, item: Item | None) -> bool:
    """A comparison the way DynamoDB evaluates it: a missing attribute holds only when
    ``or_missing``."""
    if item is None or condition.attribute not in item:
        return condition.or_missing
    try:
        return bool(_OPS[condition.op](item[condition.attribute], condition.value))
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

    def query_group(self, group: str, after: float, until: float, now: float) -> list[Item]:
        """Live items whose ``grp_pk`` is ``group`` and ``after < grp_at <= until``, oldest first.

        Eventually consistent (a global secondary index): a new entry may show up late, so the
        caller compares what it finds with what it counted before, kept on a base-table item.
        Items expired at ``now`` are left out (TTL deletes them late)."""
        ...

    def due(self, until: float, now: float) -> list[str]:
        """Keys of items whose ``due_at`` is at or before ``until``, earliest due first (expired
        ones included: the index cannot tell, the scheduler's consistent read does)."""
        ...


def due_mark(at: float) -> dict[str, Any]:
    """The attributes that put an item in the due index at ``at``."""
    return {DUE_PK: DUE_PARTITION, DUE_AT: float(at)}


def group_mark(group: str, at: float) -> dict[str, Any]:
    """The attributes that put an item in ``group`` at ``at`` (:meth:`StateStore.query_group`)."""
    return {GROUP_PK: group, GROUP_AT: float(at)}


def _copy(value: Any) -> Any:
    """A copy, as a database read or write makes one (containers copied all the way down)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, set):
        return set(value)
    return value


IndexLag = Callable[[str, float], float]
"""Seconds until a write of an item (key, write time) shows in the ``group`` index."""


def _no_lag(key: str, at: float) -> float:
    return 0.0


class MemoryStore:
    """The in-memory store of replay and tests: DynamoDB's documented semantics, thread-safe.

    It models what the service must survive: expired items stay until :meth:`sweep` (TTL deletes
    late; every read filters), ``group`` index entries can show up ``index_lag`` seconds after
    their write (a GSI is eventually consistent), and keys longer than DynamoDB's 2048 bytes are
    refused (a ``ValidationException``), and with ``check_sizes`` so are items over 400 KB
    (measured approximately, as JSON; off by default: replay does not pay for it).
    ``tests/support/simulation.py`` adds faults.
    """

    def __init__(self, index_lag: IndexLag = _no_lag, check_sizes: bool = False) -> None:
        self._items: dict[str, Item] = {}
        # (due_at, key) for every write with a due time; stale entries are skipped on read, so
        # finding due work costs O(log n) per entry instead of a scan (replay ticks per event).
        self._due: list[tuple[float, str]] = []
        self._groups: dict[str, list[tuple[float, str]]] = {}
        # When each (key, grp_at) entry shows in the group index (index lag).
        self._visible: dict[tuple[str, float], float] = {}
        self._index_lag = index_lag
        self._check_sizes = check_sizes
        self._lock = threading.Lock()
        self.calls = 0

    def _live(self, key: str, now: float) -> Item | None:
        item = self._items.get(key)
        if item is None or expired(item, now):
            return None
        return item

    def get(self, key: str, now: float) -> Item | None:
        with self._lock:
            self.calls += 1
            _check_key(key)
            item = self._live(key, now)
            return _copy(item) if item is not None else None

    def _check(self, key: str, condition: Condition | None, now: float) -> None:
        _check_key(key)
        stored = self._items.get(key)
        if condition is not None and not holds(condition, stored, now):
            live = self._live(key, now)
            raise ConditionFailed(key, _copy(live) if live is not None else None)

    def _index(self, key: str, item: Item, now: float) -> None:
        if DUE_AT in item:
            heapq.heappush(self._due, (float(item[DUE_AT]), key))
        if GROUP_PK in item:
            at = float(item[GROUP_AT])
            self._groups.setdefault(str(item[GROUP_PK]), []).append((at, key))
            # A rewrite of an entry already in the index changes it in place: it stays visible.
            self._visible.setdefault((key, at), now + self._index_lag(key, now))

    def put(self, key: str, item: Item, now: float, condition: Condition | None = None) -> None:
        with self._lock:
            self.calls += 1
            self._check(key, condition, now)
            stored = _copy(item)
            stored["pk"] = key
            self._check_size(key, stored)
            self._items[key] = stored
            self._index(key, stored, now)

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
            item = _copy(self._items.get(key, {}))
            item["pk"] = key
            for name, value in (set_values or {}).items():
                item[name] = _copy(value)
            for name, amount in (add or {}).items():
                if isinstance(amount, frozenset):
                    item[name] = set(item.get(name, set())) | set(amount)
                else:
                    item[name] = item.get(name, 0) + amount
            for name, values in (append or {}).items():
                item[name] = [*item.get(name, []), *_copy(values)]
            for name in remove:
                item.pop(name, None)
            self._check_size(key, item)
            self._items[key] = item
            if set_values and (DUE_AT in set_values or GROUP_PK in set_values):
                self._index(key, item, now)
            copied: Item = _copy(item)
            return copied

    def _check_size(self, key: str, item: Item) -> None:
        if not self._check_sizes:
            return
        size = len(_ITEM_JSON.encode(item).encode())
        if size > MAX_ITEM_BYTES:
            raise StateStoreError(
                "ValidationException: Item size has exceeded the maximum allowed size "
                f"({key[:60]}, about {size} bytes)"
            )

    def query_group(self, group: str, after: float, until: float, now: float) -> list[Item]:
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
                    and self._visible.get((key, at), 0.0) <= now
                    and not expired(item, now)
                ):
                    found[key] = _copy(item)
            return sorted(found.values(), key=lambda i: (float(i[GROUP_AT]), str(i["pk"])))

    def due(self, until: float, now: float) -> list[str]:
        with self._lock:
            self.calls += 1
            keys: dict[str, float] = {}
            while self._due and self._due[0][0] <= until:
                due_at, key = heapq.heappop(self._due)
                item = self._items.get(key)
                if item is not None and item.get(DUE_AT) == due_at:
                    keys[key] = due_at
            # Handing a key out does not clear it: whoever handles it writes a new due time (or
            # none). Re-index what was handed out so an unhandled key is not forgotten.
            for key, due_at in keys.items():
                heapq.heappush(self._due, (due_at, key))
            # Like DynamoDB's index, expired items are still listed; the scheduler clears them.
            return sorted(keys, key=lambda k: (keys[k], k))

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

    def sweep(self, now: float, keys: Sequence[str] | None = None) -> int:
        """Delete the items expired at ``now`` (only those of ``keys`` if given: TTL deletes in no
        particular order, some time after expiry); returns how many were deleted."""
        with self._lock:
            candidates = self._items if keys is None else {k: self._items[k] for k in keys}
            gone = [key for key, item in candidates.items() if expired(item, now)]
            for key in gone:
                del self._items[key]
            return len(gone)

    def items(self) -> dict[str, Item]:
        """A copy of every stored item, expired ones included (tests inspect sizes)."""
        with self._lock:
            return {key: _copy(item) for key, item in self._items.items()}

    def __len__(self) -> int:
        return len(self._items)


#: How :meth:`MemoryStore._check_size` measures an item (sets as sorted lists). One encoder for
#: every write: ``json.dumps`` with options builds a new one per call.
_ITEM_JSON = json.JSONEncoder(default=sorted, ensure_ascii=False)


def _check_key(key: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise StateStoreError(
            "ValidationException: One or more parameter values were invalid: Size of hashkey has "
            f"exceeded the maximum size limit of {MAX_KEY_BYTES} bytes ({key[:60]}...)"
        )

"""Typed views of the stored items (one dataclass per :class:`state.KeyKind` that has structure).

Each view reads an item with ``from_item`` and says what to write with ``to_item``; nothing else
in the service handles raw attribute names. Every item has a bounded size whatever the input:
attacker-controlled strings are truncated (:func:`bounded`), id lists are capped while counts stay
exact, and outboxes drop what was delivered when they are rewritten.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .state import EXPIRES_AT, Item

#: Longest string kept in state (a user agent can be 200 KiB; DynamoDB items stop at 400 KB).
MAX_STORED_STRING = 1024
#: Longest list kept in state (event ids of a summary or digest; the count stays exact).
MAX_STORED_LIST = 200
VERSION = "v"
#: How long a held record (a held alert's claim, a held summary or escalation) is kept: it must
#: outlive its storm's next digest. A storm item is kept this long after its latest digest, so it
#: never expires (and takes its digest progress with it) before the records it has counted.
HELD_RETENTION = 2 * 24 * 3600.0
#: The attribute of an event claim that names the attempt holding its lease.
OWNER = "owner"
#: The raw event an item keeps so that it can be decided again (an incident keeps its leader's,
#: a success and a failure waiting for its user's name their own), the incident an event claim
#: may lead, and the mark of a failure waiting for its Identity Center user's name.
EVENT, INCIDENT_OF, WAITING = "event", "incident", "waiting"
#: On a workflow item: failures named (by user name) before any step carried the user's
#: identity-store id, as failure entries, for the step that carries it.
ID_WAITING = "waiting_for_id"
#: How many times the scheduler decided an incident's stuck leader again.
FINISH_TRIES = "finish_tries"
#: On a success's claim, the failures its MFA fatigue escalation (and any later correction) has
#: counted so far: their event ids, and how many (what a correction's conditional write
#: compares); the failures processed after it that re-checked it (a string set of
#: ``time|eventID``), and how many re-checks were recorded (the set stops growing at
#: :data:`MAX_STORED_LIST`).
FATIGUE_IDS, FATIGUE_COUNT = "fatigue_ids", "fatigue_count"
FATIGUE_LATE, FATIGUE_RECHECKS = "fatigue_late", "fatigue_rechecks"


def bounded(
    value: Any, max_string: int = MAX_STORED_STRING, max_list: int = MAX_STORED_LIST
) -> Any:
    """A JSON value with every string and list cut to a bounded length (state, never messages:
    renderers clean and bound again for display)."""
    if isinstance(value, str):
        return value if len(value) <= max_string else value[: max_string - 1] + "…"
    if isinstance(value, Mapping):
        return {str(k)[:max_string]: bounded(v, max_string, max_list) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bounded(v, max_string, max_list) for v in list(value)[:max_list]]
    return value


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- outboxes: what an item decided to publish, and which outputs confirmed ------------------


@dataclass(frozen=True)
class OutboxEntry:
    """One decided notification: rendered state, where it goes, and the rate-limit decision
    (made once, stored with it: a retry never asks the rate limiter again)."""

    id: str
    notification: Mapping[str, Any]
    destinations: tuple[str, ...]
    held: bool = False
    """Held by a rate limit: counted in its rule's storm digest, never published on its own."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "notification": bounded(self.notification),
            "destinations": list(self.destinations),
            "held": self.held,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            id=str(data["id"]),
            notification=data["notification"],
            destinations=tuple(str(d) for d in data["destinations"]),
            held=bool(data.get("held", False)),
        )


def delivery_mark(entry_id: str, destination: str) -> str:
    """The member of an item's ``delivered`` set that records one output's success."""
    return f"{entry_id}@{destination}"


@dataclass(frozen=True)
class Outbox:
    """The outbox of an item that publishes (event claim, storm, heartbeat)."""

    entries: tuple[OutboxEntry, ...] = ()
    delivered: frozenset[str] = frozenset()

    def pending(self) -> list[tuple[OutboxEntry, str]]:
        """(entry, output) pairs decided for publishing and not confirmed yet, in order."""
        return [
            (entry, destination)
            for entry in self.entries
            if not entry.held
            for destination in entry.destinations
            if delivery_mark(entry.id, destination) not in self.delivered
        ]

    def with_entries(self, new: list[OutboxEntry]) -> Outbox:
        """Add entries, dropping those fully delivered (bounded size) and their marks."""
        kept = [e for e in self.entries if Outbox((e,), self.delivered).pending()]
        marks = frozenset(m for m in self.delivered if any(m.startswith(f"{e.id}@") for e in kept))
        known = {e.id for e in kept}
        return Outbox((*kept, *(e for e in new if e.id not in known)), marks)

    def to_item(self) -> Item:
        item: Item = {"outbox": _json([e.to_json() for e in self.entries])}
        if self.delivered:
            item["delivered"] = set(self.delivered)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Outbox:
        entries = json.loads(item["outbox"]) if item.get("outbox") else []
        return cls(
            tuple(OutboxEntry.from_json(e) for e in entries),
            frozenset(str(m) for m in item.get("delivered", ())),
        )


# --- event claims ----------------------------------------------------------------------------


class ClaimStatus(enum.Enum):
    PROCESSING = "processing"
    """Claimed; nothing decided yet (or the decision was not saved)."""
    DECIDED = "decided"
    """The decision is saved in the outbox; outputs confirm one by one."""
    DONE = "done"
    """Every output confirmed (or nothing was to be sent)."""


@dataclass(frozen=True)
class WindowRef:
    """What the leading event of an incident window needs to summarize its repeats later."""

    group: str
    """The group its repeats are written to (see :meth:`state.StateStore.query_group`)."""
    rule_id: str
    dedup_key: str
    window_start: float
    window_end: float
    account: str
    region: str
    principal: str
    principal_key: str
    principal_type: str
    source_ip: str
    cutoff: float = 0.0
    """Repeats written at or before this processing time are summarized already."""
    batch: int = 0
    """Summaries sent so far (a late repeat after a summary makes the next batch)."""
    band: tuple[str, ...] = ()
    band_count: int = 0
    """The repeats counted in the index-lag horizon before ``cutoff`` (:class:`scheduler.Band`)."""

    def to_json(self) -> dict[str, Any]:
        return bounded(dict(self.__dict__))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowRef:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "band" in values:
            values["band"] = tuple(str(k) for k in values["band"])
        return cls(**values)


@dataclass(frozen=True)
class Held:
    """A notification held by a rate limit or a suppression, as the storm digest counts it."""

    kind: str
    count: int
    event_ids: tuple[str, ...]
    principal: str
    source_ip: str
    account: str
    region: str
    principal_type: str
    first: float
    last: float
    suppressed_by: str = ""
    """The id of the suppression that held it (empty: a rate limit held it)."""

    def to_json(self) -> dict[str, Any]:
        data = bounded(dict(self.__dict__))
        return data  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Held:
        return cls(
            kind=str(data["kind"]),
            count=int(data["count"]),
            event_ids=tuple(str(e) for e in data["event_ids"]),
            principal=str(data["principal"]),
            source_ip=str(data["source_ip"]),
            account=str(data["account"]),
            region=str(data["region"]),
            principal_type=str(data["principal_type"]),
            first=float(data["first"]),
            last=float(data["last"]),
            suppressed_by=str(data.get("suppressed_by", "")),
        )


def held_of(item: Mapping[str, Any]) -> list[Held]:
    """The held notifications an item (event claim or held summary) records."""
    return [Held.from_json(h) for h in json.loads(item["held"])] if item.get("held") else []


def held_attribute(held: list[Held]) -> str:
    return _json([h.to_json() for h in held])


@dataclass(frozen=True)
class EventClaim:
    """The item of one (rule, eventID)."""

    status: ClaimStatus
    lease_until: float
    expires_at: float
    outbox: Outbox = Outbox()
    window: WindowRef | None = None
    version: int = 0
    owner: str = ""
    """The token of the attempt that holds the lease: an attempt whose conditional write was
    applied but unacknowledged (botocore retried it) finds its own token and carries on."""
    claimed_at: float = 0.0
    """When the first attempt claimed it."""
    fatigue: tuple[str, ...] = ()
    """A success escalated for MFA fatigue: the failures counted so far (at most the
    principal's kept failures and the re-checks recorded, so the list is complete)."""
    fatigue_late: tuple[tuple[float, str], ...] = ()
    """Failures before it, processed after it was escalated, that re-checked it."""

    @property
    def fatigue_count(self) -> int:
        return len(self.fatigue)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EventClaim:
        window = json.loads(item["window"]) if item.get("window") else None
        return cls(
            status=ClaimStatus(item.get("status", ClaimStatus.PROCESSING.value)),
            lease_until=float(item.get("lease_until", 0.0)),
            expires_at=float(item.get(EXPIRES_AT, 0.0)),
            outbox=Outbox.from_item(item),
            window=WindowRef.from_json(window) if window else None,
            version=int(item.get(VERSION, 0)),
            owner=str(item.get(OWNER, "")),
            claimed_at=float(item.get("claimed_at", 0.0)),
            fatigue=tuple(str(e) for e in item.get(FATIGUE_IDS, ())),
            fatigue_late=_entries(item.get(FATIGUE_LATE, ())),
        )


def window_attribute(window: WindowRef) -> str:
    return _json(window.to_json())


# --- incidents, principals, the topic's counters ---------------------------------------------


@dataclass(frozen=True)
class Incident:
    """The current window of one (rule, dedup key): written once per window, read by repeats."""

    window_start: float
    window_end: float
    leader: str
    """The claim key of the window's leading event (its alert; it summarizes the repeats)."""
    group: str

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Incident:
        return cls(
            window_start=float(item["window_start"]),
            window_end=float(item["window_end"]),
            leader=str(item["leader"]),
            group=str(item["group"]),
        )


@dataclass(frozen=True)
class PrincipalFailures:
    """One principal's recent failures (``(event time, eventID)``, possibly with retried
    duplicates: readers deduplicate) and the escalation of its current burst."""

    failures: tuple[tuple[float, str], ...] = ()
    escalated_until: float = 0.0
    escalated_by: str = ""
    successes: tuple[tuple[float, str], ...] = ()
    """Recent successful sign-ins ``(event time, claim key)``: a failure processed after a
    success it precedes re-checks that success for MFA fatigue."""
    failure_ips: Mapping[str, str] = field(default_factory=dict)
    """The source IP of each failure (by eventID) that recorded one: a success from another
    address than the failures is a takeover (:func:`decisions.success_escalation`)."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> PrincipalFailures:
        if not item:
            return cls()
        failures, ips = _failure_entries(item.get("failures", []))
        return cls(
            failures,
            float(item.get("escalated_until", 0.0)),
            str(item.get("escalated_by", "")),
            _entries(item.get("successes", [])),
            ips,
        )


def _entries(entries: Any) -> tuple[tuple[float, str], ...]:
    parsed = []
    for entry in entries:
        t, _, name = str(entry).partition("|")
        parsed.append((float(t), name))
    return tuple(sorted(set(parsed)))


def parse_failure_entry(entry: Any) -> tuple[float, str, str]:
    """``(time, eventID, ip)`` of a :func:`failure_entry` (``time|eventID`` entries, written
    before failures kept their IP, have none)."""
    t, _, rest = str(entry).partition("|")
    event_id, bar, ip = rest.rpartition("|")
    if not bar:
        event_id, ip = rest, ""
    return float(t), event_id, ip


def _failure_entries(entries: Any) -> tuple[tuple[tuple[float, str], ...], dict[str, str]]:
    parsed = []
    ips: dict[str, str] = {}
    for entry in entries:
        t, event_id, ip = parse_failure_entry(entry)
        parsed.append((t, event_id))
        if ip:
            ips[event_id] = ip
    return tuple(sorted(set(parsed))), ips


#: Longest source IP kept with a failure or a repeat (an IPv6 address has at most 45
#: characters; CloudTrail may put a service name there, and a forged archive anything).
MAX_IP = 64


def failure_entry(t: float, event_id: str, source_ip: str | None = None) -> str:
    """A principal's failure (or success: ``source_ip`` None) as one list entry. A failure
    keeps its source IP, bounded and without the separator, always as the last part (empty when
    the event has none), so an event id is read back whole whatever it contains."""
    if source_ip is None:
        return f"{t!r}|{event_id}"
    ip = source_ip.replace("|", "")[:MAX_IP]
    return f"{t!r}|{event_id}|{ip}"


COUNTER_PREFIX = "sent_"
STORM_PREFIX = "storm_"


def counter_attribute(slot: int) -> str:
    """The attribute of a fixed-window counter (``sent_<window index>``)."""
    return f"{COUNTER_PREFIX}{slot}"


def storm_attribute(rule_id: str) -> str:
    """The attribute of the topic's counters that holds a rule's storm mode end time."""
    return STORM_PREFIX + "".join(ch if ch.isalnum() else "_" for ch in rule_id)


def stale_counters(item: Mapping[str, Any], slot: int) -> list[str]:
    """Counter attributes of windows before the previous one (no decision reads them again)."""
    stale = []
    for name in item:
        index = name[len(COUNTER_PREFIX) :] if name.startswith(COUNTER_PREFIX) else ""
        if index.lstrip("-").isdigit() and int(index) < slot - 1:
            stale.append(name)
    return sorted(stale)


def ended_storms(item: Mapping[str, Any], now: float) -> dict[str, float]:
    """Storm-mode attributes whose storm has ended (an absent one means the same)."""
    return {
        name: float(value)
        for name, value in item.items()
        if name.startswith(STORM_PREFIX) and isinstance(value, int | float) and value <= now
    }


@dataclass(frozen=True)
class StormState:
    """One rule's digest progress: held notifications up to ``cutoff`` are digested."""

    cutoff: float = 0.0
    batch: int = 0
    opened_at: float = 0.0
    last_hold: float = 0.0
    """When the latest hold seen by a digest was written (storm mode ends after a quiet spell)."""
    outbox: Outbox = Outbox()
    version: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> StormState:
        if not item:
            return cls()
        return cls(
            cutoff=float(item.get("cutoff", 0.0)),
            batch=int(item.get("batch", 0)),
            opened_at=float(item.get("opened_at", 0.0)),
            last_hold=float(item.get("last_hold", 0.0)),
            outbox=Outbox.from_item(item),
            version=int(item.get(VERSION, 0)),
        )


@dataclass(frozen=True)
class Workflow:
    """Who an Identity Center sign-in workflow belongs to (names, ids come on different steps)."""

    user_name: str = ""
    user_id: str = ""

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> Workflow:
        item = item or {}
        return cls(str(item.get("user_name", "")), str(item.get("user_id", "")))


@dataclass(frozen=True)
class Heartbeat:
    """One account x Region: the last heartbeat, whether its absence was reported."""

    account: str
    region: str
    last_seen: float
    missing_reported: bool = False
    missing_since: float = 0.0
    outbox: Outbox = field(default_factory=Outbox)
    version: int = 0

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Heartbeat:
        return cls(
            account=str(item["account"]),
            region=str(item["region"]),
            last_seen=float(item["last_seen"]),
            missing_reported=bool(item.get("missing_reported", False)),
            missing_since=float(item.get("missing_since", 0.0)),
            outbox=Outbox.from_item(item),
            version=int(item.get(VERSION, 0)),
        )

    def to_item(self) -> Item:
        return {
            "account": self.account,
            "region": self.region,
            "last_seen": self.last_seen,
            "missing_reported": self.missing_reported,
            "missing_since": self.missing_since,
            **self.outbox.to_item(),
        }

"""The alerting decisions, as pure state transitions (see :func:`state.transact`).

Each function returns a transition ``document | None -> (Write | None, result)``; nothing here does
I/O, reads a clock or imports an AWS SDK. Times are epoch seconds. ``t`` is the event time (what
windows are about); ``now`` is the processing time (what leases, expiry and due times are about).
In replay both are the event time.

Timelines (defaults):

* Event claim — EventBridge retries a delivery for up to 24 hours and Lambda's asynchronous
  invocation keeps an event up to 6 hours, so a claim is remembered for 48 hours::

      claim(processing, lease 90 s) -> outbox saved (pending) -> delivered (done) -> expires 48 h

  A second delivery while the first is processing gets IN_PROGRESS (the handler raises so Lambda
  retries later); after ``done`` it is a DUPLICATE; while ``pending`` it only redelivers what the
  outbox still holds.
* Incident window (15 min)::

      t0 first event: ALERT, window [t0, t0+15m) | repeats counted, no notification
      t0+15m: due; the scheduler (or the next event of the same key) moves a summary to the outbox
* Failures per principal: a sliding list of recent failure times; N within M raises one
  escalation per burst (suppressed while failures keep arriving within M of each other).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .constants import HEARTBEAT_OVERDUE_SECONDS
from .state import Document, Transition, Write

#: Keep at most this many event ids in an incident or storm (counts stay exact beyond it).
MAX_EVENT_IDS = 500
#: How long an incident document outlives its window, so a late summary can still be delivered.
INCIDENT_GRACE = 2 * 24 * 3600.0


def claim_key(rule_id: str, event_id: str) -> str:
    return f"evt#{rule_id}#{event_id}"


def incident_key(rule_id: str, dedup_key: str) -> str:
    return f"inc#{rule_id}#{dedup_key}"


def failures_key(account: str, principal_key: str) -> str:
    return f"fail#{account}#{principal_key}"


def bucket_key(scope: str) -> str:
    return f"tb#{scope}"


def storm_key(rule_id: str) -> str:
    return f"storm#{rule_id}"


def workflow_key(workflow_id: str) -> str:
    return f"wf#{workflow_id}"


# --- exactly once per event ------------------------------------------------------------------


class Claim(enum.Enum):
    NEW = "new"
    """First delivery (or a takeover after a crashed attempt's lease ran out): decide."""
    IN_PROGRESS = "in_progress"
    """Another invocation is processing it right now: retry later."""
    PENDING = "pending"
    """Decided, but not everything was delivered: deliver the outbox."""
    DUPLICATE = "duplicate"
    """Fully handled before: do nothing."""


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    outbox: tuple[dict[str, Any], ...] = ()


def claim_event(now: float, lease: float, ttl: float) -> Transition[ClaimResult]:
    """Claim an event for processing (the exactly-once gate)."""

    def transition(doc: Document | None) -> tuple[Write | None, ClaimResult]:
        fresh = Write(
            {"status": "processing", "lease_until": now + lease, "expires_at": now + ttl}, now + ttl
        )
        if doc is None:
            return fresh, ClaimResult(Claim.NEW)
        status = doc.get("status")
        if status == "done":
            return None, ClaimResult(Claim.DUPLICATE)
        if float(doc.get("lease_until", 0)) > now:
            # Someone is deciding or delivering right now: delivering the same outbox in
            # parallel would publish twice.
            return None, ClaimResult(Claim.IN_PROGRESS)
        if status == "pending":
            renewed = Write(
                doc | {"lease_until": now + lease}, float(doc["expires_at"]), now + lease
            )
            return renewed, ClaimResult(Claim.PENDING, tuple(doc.get("outbox", ())))
        return fresh, ClaimResult(Claim.NEW)

    return transition


def save_outbox(
    entries: Sequence[dict[str, Any]], now: float, lease: float, ttl: float
) -> Transition[None]:
    """Record what an event decided before delivering it (so a retry resends, never re-decides)."""

    def transition(doc: Document | None) -> tuple[Write | None, None]:
        document = {
            "status": "pending" if entries else "done",
            "outbox": list(entries),
            "expires_at": now + ttl,
            "lease_until": now + lease,  # this invocation delivers it; others wait
        }
        return Write(document, now + ttl, due_at=now + lease if entries else None), None

    return transition


def mark_delivered(
    delivered: dict[str, set[str]], now: float, retry_after: float
) -> Transition[int]:
    """Drop delivered destinations from a document's outbox; returns how many entries remain.

    ``delivered`` maps an outbox entry id to the destinations that accepted it. Works on event
    claims (``status`` becomes ``done`` when the outbox empties) and on incident/storm documents.
    """

    def transition(doc: Document | None) -> tuple[Write | None, int]:
        if doc is None:
            return None, 0
        remaining = []
        for entry in doc.get("outbox", []):
            pending = [
                d for d in entry["destinations"] if d not in delivered.get(entry["id"], set())
            ]
            if pending:
                remaining.append(entry | {"destinations": pending})
        new = dict(doc)
        new["outbox"] = remaining
        if "status" in new:
            new["status"] = "pending" if remaining else "done"
            new["lease_until"] = now  # this attempt is over: a retry may take the rest now
        expires = float(doc.get("expires_at", now + INCIDENT_GRACE))
        new["expires_at"] = expires
        due = now + retry_after if remaining else _own_due(new)
        return Write(new, expires, due_at=due), len(remaining)

    return transition


def _own_due(doc: Document) -> float | None:
    """When a document next needs the scheduler, besides its outbox."""
    if doc.get("kind") == "incident" and doc.get("repeats", 0) > 0:
        return float(doc["window_end"])
    if doc.get("kind") == "storm" and doc.get("notifications", 0) > 0:
        return float(doc["due_at"])
    if doc.get("kind") == "heartbeat" and not doc.get("missing_reported"):
        return float(doc["last_seen"]) + HEARTBEAT_OVERDUE_SECONDS
    return None


# --- incidents: leading alert, counted repeats, trailing summary -----------------------------


class Observed(enum.Enum):
    ALERT = "alert"
    REPEAT = "repeat"


@dataclass(frozen=True)
class IncidentFacts:
    """What an incident document needs to describe itself in a summary."""

    rule_id: str
    dedup_key: str
    account: str
    region: str
    principal: str
    principal_type: str
    source_ip: str


def observe_event(
    facts: IncidentFacts,
    event_id: str,
    t: float,
    now: float,
    window: float,
    summary_entry: Any,
) -> Transition[Observed]:
    """Count an event into its incident. The first event of a window is the ALERT.

    ``summary_entry(doc) -> outbox entry`` builds the summary of a window that closed with
    repeats nobody summarized yet (it goes into the same write: never lost). Idempotent per
    event id, so a retried invocation does not count twice.
    """

    def transition(doc: Document | None) -> tuple[Write | None, Observed]:
        if doc is not None and doc.get("leader") == event_id and t < float(doc["window_end"]):
            return None, Observed.ALERT  # retried leader: decide the same again
        if doc is not None and event_id in doc.get("seen", []):
            return None, Observed.REPEAT
        if doc is None or t >= float(doc["window_end"]):
            outbox = list(doc.get("outbox", [])) if doc else []
            if doc and doc.get("repeats", 0) > 0:
                outbox.append(summary_entry(doc | {"batch": int(doc.get("batch", 0)) + 1}))
            new = {
                "kind": "incident",
                **facts.__dict__,
                "leader": event_id,
                "window_start": t,
                "window_end": t + window,
                "repeats": 0,
                "repeat_ids": [],
                "seen": [],
                "outbox": outbox,
            }
            return _incident_write(new, now, outbox_due=bool(outbox)), Observed.ALERT
        # "repeats"/"repeat_ids"/first/last: not yet summarized (a late repeat after a summary
        # starts a new batch, never lost). "seen": every repeat of the window, for idempotency.
        new = dict(doc)
        new["repeats"] = int(doc.get("repeats", 0)) + 1
        ids = list(doc.get("repeat_ids", []))
        if len(ids) < MAX_EVENT_IDS:
            ids.append(event_id)
        new["repeat_ids"] = ids
        seen = list(doc.get("seen", []))
        if len(seen) < MAX_EVENT_IDS:
            seen.append(event_id)
        new["seen"] = seen
        new["first_repeat"] = min(float(doc.get("first_repeat", t)), t)
        new["last_repeat"] = max(float(doc.get("last_repeat", t)), t)
        return _incident_write(new, now, outbox_due=bool(new.get("outbox"))), Observed.REPEAT

    return transition


def _incident_write(doc: Document, now: float, outbox_due: bool) -> Write:
    # Windows follow event time; retention follows processing time (a late delivery of an old
    # event must still find its incident), whichever is later.
    expires = max(float(doc["window_end"]), now) + INCIDENT_GRACE
    doc["expires_at"] = expires
    due = _own_due(doc)
    if outbox_due:
        due = now if due is None else min(due, now)
    return Write(doc, expires, due_at=due)


def close_incident(now: float, force: bool, summary_entry: Any) -> Transition[bool]:
    """Summarize a window that ended (or any open window, with ``force``: end of replay).

    Returns True when a summary was put in the document's outbox.
    """

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        if doc is None or doc.get("kind") != "incident":
            return None, False
        due = force or float(doc["window_end"]) <= now
        if not due or int(doc.get("repeats", 0)) == 0:
            return None, False
        new = {k: v for k, v in doc.items() if k not in ("first_repeat", "last_repeat")}
        new["repeats"] = 0
        new["repeat_ids"] = []
        new["batch"] = int(doc.get("batch", 0)) + 1  # a late repeat makes a second batch
        new["outbox"] = [*doc.get("outbox", []), summary_entry(doc | {"batch": new["batch"]})]
        return _incident_write(new, now, outbox_due=True), True

    return transition


# --- failures per principal: brute force / MFA fatigue ----------------------------------------


@dataclass(frozen=True)
class FailureCount:
    in_window: int
    event_ids: tuple[str, ...]
    escalate: bool


def record_failure(
    event_id: str, t: float, now: float, count: int, window: float, horizon: float, keep: int
) -> Transition[FailureCount]:
    """Add a failure; escalate once when ``count`` failures fall within ``window`` seconds.

    Keeps the last ``keep`` failures of the last ``horizon`` seconds (enough for both the brute
    force and the fatigue-success checks). Deliveries arrive out of order, so the check is not
    "the ``count`` failures before this one" but "any ``count`` consecutive failures, this one
    among them, spanning less than ``window``". One escalation per burst: a burst that starts
    before ``escalated_until`` is the same burst, and pushes that time further.
    """

    def transition(doc: Document | None) -> tuple[Write | None, FailureCount]:
        events = [
            (float(e[0]), str(e[1]))
            for e in (doc or {}).get("events", [])
            if float(e[0]) > t - horizon
        ]
        if any(e[1] == event_id for e in events):
            return None, FailureCount(0, (), False)  # a retried delivery: counted already
        events.append((t, event_id))
        events.sort()
        events = events[-keep:]
        index = events.index((t, event_id)) if (t, event_id) in events else len(events) - 1
        burst: list[tuple[float, str]] = []
        for start in range(max(0, index - count + 1), index + 1):
            run = events[start : start + count]
            if len(run) == count and run[-1][0] - run[0][0] < window:
                burst = [e for e in events if run[0][0] <= e[0] < run[0][0] + window]
                break
        suppressed_until = float((doc or {}).get("escalated_until", 0))
        escalate = bool(burst) and burst[0][0] >= suppressed_until
        if burst:
            suppressed_until = max(suppressed_until, burst[-1][0] + window)
        new = {"events": [list(e) for e in events], "escalated_until": suppressed_until}
        result = FailureCount(len(burst), tuple(e[1] for e in burst), escalate)
        return Write(new, max(t, now) + horizon), result

    return transition


def failures_since(since: float, until: float) -> Transition[tuple[str, ...]]:
    """Read-only: the failure event ids in ``(since, until]``."""

    def transition(doc: Document | None) -> tuple[Write | None, tuple[str, ...]]:
        events = (doc or {}).get("events", [])
        return None, tuple(str(e[1]) for e in events if since < float(e[0]) <= until)

    return transition


# --- token buckets and storms ----------------------------------------------------------------


def take_token(capacity: int, period: float, now: float) -> Transition[bool]:
    """Take one token from a bucket of ``capacity`` that refills fully every ``period`` seconds."""

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        tokens = float(capacity) if doc is None else float(doc["tokens"])
        updated = now if doc is None else float(doc["updated"])
        tokens = min(float(capacity), tokens + max(0.0, now - updated) * capacity / period)
        if tokens < 1.0:
            return None, False
        return Write({"tokens": tokens - 1.0, "updated": now}, now + 2 * period), True

    return transition


@dataclass(frozen=True)
class Held:
    """A notification held by a rate limit, as the storm digest counts it."""

    count: int
    event_ids: tuple[str, ...]
    principal: str
    source_ip: str
    account: str
    region: str
    principal_type: str
    first: float
    last: float
    kind: str


def hold_in_storm(held: Held, now: float, period: float) -> Transition[bool]:
    """Add a held notification to its rule's storm; True when this opened the storm."""

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        opened = doc is None or int(doc.get("notifications", 0)) == 0
        new: Document = dict(doc or {"kind": "storm", "outbox": []})
        if opened:
            new.update(
                opened_at=now,
                due_at=now + period,
                count=0,
                notifications=0,
                event_ids=[],
                principals={},
                ips={},
                accounts={},
                regions={},
                principal_types={},
                first=held.first,
                last=held.last,
                kinds={},
                escalated={},
            )
        if held.kind == "escalation":
            # Escalations cover events already counted by alerts/summaries: tally them apart
            # so that the storm's count stays the exact number of events it accounts for.
            escalated = dict(new.get("escalated", {}))
            escalated[held.principal] = int(escalated.get(held.principal, 0)) + 1
            new["escalated"] = escalated
            new["notifications"] = int(new["notifications"]) + 1
            kinds = dict(new["kinds"])
            kinds[held.kind] = int(kinds.get(held.kind, 0)) + 1
            new["kinds"] = kinds
            expires = float(new["due_at"]) + INCIDENT_GRACE
            new["expires_at"] = expires
            due = float(new["due_at"]) if not new.get("outbox") else now
            return Write(new, expires, due_at=due), opened
        new["count"] = int(new["count"]) + held.count
        new["notifications"] = int(new["notifications"]) + 1
        ids = list(new["event_ids"])
        ids.extend(held.event_ids[: max(0, MAX_EVENT_IDS - len(ids))])
        new["event_ids"] = ids
        for field, value in (
            ("principals", held.principal),
            ("ips", held.source_ip),
            ("accounts", held.account),
            ("regions", held.region),
            ("principal_types", held.principal_type),
        ):
            counts = dict(new[field])
            counts[value] = int(counts.get(value, 0)) + held.count
            new[field] = counts
        kinds = dict(new["kinds"])
        kinds[held.kind] = int(kinds.get(held.kind, 0)) + 1
        new["kinds"] = kinds
        new["first"] = min(float(new["first"]), held.first)
        new["last"] = max(float(new["last"]), held.last)
        expires = float(new["due_at"]) + INCIDENT_GRACE
        new["expires_at"] = expires
        due = float(new["due_at"]) if not new.get("outbox") else now
        return Write(new, expires, due_at=due), opened

    return transition


def flush_storm(now: float, force: bool, digest_entry: Any) -> Transition[bool]:
    """Turn a storm whose refill period passed (or any, with ``force``) into a digest."""

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        if doc is None or int(doc.get("notifications", 0)) == 0:
            return None, False
        if not force and float(doc["due_at"]) > now:
            return None, False
        new = {
            "kind": "storm",
            "count": 0,
            "notifications": 0,
            "outbox": [*doc.get("outbox", []), digest_entry(doc)],
            "expires_at": now + INCIDENT_GRACE,
        }
        return Write(new, now + INCIDENT_GRACE, due_at=now), True

    return transition


# --- Identity Center workflows --------------------------------------------------------------


def remember_workflow(user_name: str, user_id: str, now: float, ttl: float) -> Transition[None]:
    """Merge who a sign-in workflow belongs to (names and ids arrive on different steps)."""

    def transition(doc: Document | None) -> tuple[Write | None, None]:
        old = doc or {}
        new = {
            "user_name": old.get("user_name") or user_name,
            "user_id": old.get("user_id") or user_id,
        }
        if new == {k: old.get(k) for k in new}:
            return None, None
        return Write(new, now + ttl), None

    return transition


def read_document() -> Transition[Document | None]:
    """Read-only transition: the live document."""

    def transition(doc: Document | None) -> tuple[Write | None, Document | None]:
        return None, doc

    return transition


# --- heartbeats: is every account x Region still forwarding? ---------------------------------


def heartbeat_key(account: str, region: str) -> str:
    return f"hb#{account}#{region}"


HEARTBEAT_RETENTION = 30 * 24 * 3600.0


def heartbeat_seen(
    account: str, region: str, now: float, overdue: float, recovered_entry: Any
) -> Transition[bool]:
    """A heartbeat arrived: push the overdue time forward. True when it ends a reported outage
    (``recovered_entry(doc)`` then goes into the outbox)."""

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        recovered = bool(doc and doc.get("missing_reported"))
        outbox = list((doc or {}).get("outbox", []))
        new: Document = {
            "kind": "heartbeat",
            "account": account,
            "region": region,
            "last_seen": now,
            "previous": (doc or {}).get("last_seen"),
            "missing_reported": False,
            "outbox": outbox,
        }
        if recovered:
            outbox.append(recovered_entry(new | {"missing_since": (doc or {})["last_seen"]}))
        due = now if outbox else now + overdue
        return Write(new, now + HEARTBEAT_RETENTION, due_at=due), recovered

    return transition


def heartbeat_overdue(now: float, overdue: float, missing_entry: Any) -> Transition[bool]:
    """Report an account x Region whose heartbeat stopped, once per outage."""

    def transition(doc: Document | None) -> tuple[Write | None, bool]:
        if doc is None or doc.get("kind") != "heartbeat" or doc.get("missing_reported"):
            return None, False
        if now < float(doc["last_seen"]) + overdue:
            return None, False
        new = dict(doc)
        new["missing_reported"] = True
        new["outbox"] = [*doc.get("outbox", []), missing_entry(doc)]
        return Write(new, now + HEARTBEAT_RETENTION, due_at=now), True

    return transition

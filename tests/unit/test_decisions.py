"""The pure transitions of chalicelib.decisions, applied to documents (and to a MemoryStore)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from chalicelib.decisions import (
    INCIDENT_GRACE,
    Claim,
    Held,
    IncidentFacts,
    Observed,
    claim_event,
    close_incident,
    failures_since,
    flush_storm,
    hold_in_storm,
    mark_delivered,
    observe_event,
    record_failure,
    remember_workflow,
    save_outbox,
    take_token,
)
from chalicelib.state import Document, MemoryStore, Transition, Write, transact

R = TypeVar("R")

LEASE, TTL, WINDOW = 90.0, 48 * 3600.0, 900.0
FACTS = IncidentFacts(
    rule_id="iam-console-mfa-failure",
    dedup_key="111122223333|ops-admin|203.0.113.7",
    account="111122223333",
    region="us-east-1",
    principal="ops-admin",
    principal_type="IAMUser",
    source_ip="203.0.113.7",
)


def apply(transition: Transition[R], doc: Document | None) -> tuple[Write | None, R]:
    return transition(doc)


def summary_entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stand-in for the service's summary builder: enough to check what was summarized."""
    return {
        "id": f"summary:{doc['window_start']}",
        "destinations": ["alerts"],
        "repeats": doc["repeats"],
        "repeat_ids": list(doc["repeat_ids"]),
    }


def observe(store: MemoryStore, event_id: str, t: float, now: float | None = None) -> Observed:
    now = t if now is None else now
    return transact(
        store, "inc", now, observe_event(FACTS, event_id, t, now, WINDOW, summary_entry)
    )


# --- event claims ------------------------------------------------------------------------------


def test_first_claim_is_new_with_a_lease_and_a_ttl() -> None:
    write, result = apply(claim_event(1000.0, LEASE, TTL), None)
    assert result.claim is Claim.NEW
    assert write is not None
    assert write.document == {
        "status": "processing",
        "lease_until": 1090.0,
        "expires_at": 1000.0 + TTL,
    }
    assert write.expires_at == 1000.0 + TTL and write.due_at is None


def test_claim_while_the_lease_runs_is_in_progress_then_taken_over() -> None:
    write, _ = apply(claim_event(1000.0, LEASE, TTL), None)
    assert write is not None
    busy_write, busy = apply(claim_event(1089.0, LEASE, TTL), write.document)
    assert busy.claim is Claim.IN_PROGRESS and busy_write is None
    takeover, taken = apply(claim_event(1090.0, LEASE, TTL), write.document)
    assert taken.claim is Claim.NEW
    assert takeover is not None and takeover.document["lease_until"] == 1180.0


def test_saved_outbox_is_leased_then_pending_and_delivery_makes_it_duplicate() -> None:
    store = MemoryStore()
    assert transact(store, "evt", 0.0, claim_event(0.0, LEASE, TTL)).claim is Claim.NEW
    entries = [
        {"id": "alert:1", "destinations": ["alerts", "pager"]},
        {"id": "escalation:1", "destinations": ["alerts"]},
    ]
    transact(store, "evt", 1.0, save_outbox(entries, 1.0, LEASE, TTL))
    assert store.due(until=91.0, now=1.0) == ["evt"], "an undelivered outbox is retried"
    # While the deciding invocation delivers, a concurrent duplicate must not deliver too.
    busy = transact(store, "evt", 2.0, claim_event(2.0, LEASE, TTL))
    assert busy.claim is Claim.IN_PROGRESS
    # Partial delivery: only the failed destination stays, due for a retry; the lease ends.
    left = transact(
        store,
        "evt",
        3.0,
        mark_delivered({"alert:1": {"alerts"}, "escalation:1": {"alerts"}}, 3.0, 60.0),
    )
    assert left == 1
    again = transact(store, "evt", 4.0, claim_event(4.0, LEASE, TTL))
    assert again.claim is Claim.PENDING
    assert again.outbox == ({"id": "alert:1", "destinations": ["pager"]},)
    # The retry holds a new lease: a second retry right now waits.
    assert transact(store, "evt", 5.0, claim_event(5.0, LEASE, TTL)).claim is Claim.IN_PROGRESS
    assert transact(store, "evt", 6.0, mark_delivered({"alert:1": {"pager"}}, 6.0, 60.0)) == 0
    assert transact(store, "evt", 7.0, claim_event(7.0, LEASE, TTL)).claim is Claim.DUPLICATE
    assert store.due(until=1e12, now=7.0) == []


def test_an_event_that_decided_nothing_is_done_at_once() -> None:
    store = MemoryStore()
    transact(store, "evt", 0.0, claim_event(0.0, LEASE, TTL))
    transact(store, "evt", 0.0, save_outbox([], 0.0, LEASE, TTL))
    assert transact(store, "evt", 1.0, claim_event(1.0, LEASE, TTL)).claim is Claim.DUPLICATE
    # ... and is forgotten after the claim TTL (a redelivery two days later decides again).
    assert transact(store, "evt", TTL, claim_event(TTL, LEASE, TTL)).claim is Claim.NEW


# --- incidents -----------------------------------------------------------------------------------


def test_first_event_alerts_and_repeats_are_counted_with_first_and_last() -> None:
    store = MemoryStore()
    assert observe(store, "a", 100.0) is Observed.ALERT
    assert observe(store, "c", 160.0) is Observed.REPEAT
    assert observe(store, "b", 130.0) is Observed.REPEAT  # out of order: still counted
    doc = store.get("inc", 160.0).document
    assert doc is not None
    assert doc["leader"] == "a" and doc["repeats"] == 2 and doc["repeat_ids"] == ["c", "b"]
    assert (doc["first_repeat"], doc["last_repeat"]) == (130.0, 160.0)
    assert (doc["window_start"], doc["window_end"]) == (100.0, 1000.0)
    assert doc["expires_at"] == 1000.0 + INCIDENT_GRACE
    assert store.due(until=999.0, now=160.0) == []
    assert store.due(until=1000.0, now=160.0) == ["inc"], "due when the window ends"


def test_repeating_the_same_event_is_idempotent() -> None:
    store = MemoryStore()
    observe(store, "a", 100.0)
    observe(store, "b", 110.0)
    calls = store.calls
    assert observe(store, "a", 100.0) is Observed.ALERT, "a retried leader decides the same"
    assert observe(store, "b", 110.0) is Observed.REPEAT
    assert store.calls == calls + 2, "no writes for a known event"
    doc = store.get("inc", 110.0).document
    assert doc is not None and doc["repeats"] == 1


def test_window_rollover_alerts_again_and_carries_the_pending_summary_into_the_outbox() -> None:
    store = MemoryStore()
    observe(store, "a", 100.0)
    observe(store, "b", 200.0)
    observe(store, "c", 300.0)
    assert observe(store, "d", 1000.0) is Observed.ALERT, "window [100, 1000) is over"
    doc = store.get("inc", 1000.0).document
    assert doc is not None
    assert doc["leader"] == "d" and doc["repeats"] == 0 and doc["window_start"] == 1000.0
    assert doc["outbox"] == [
        {"id": "summary:100.0", "destinations": ["alerts"], "repeats": 2, "repeat_ids": ["b", "c"]}
    ]
    assert store.due(until=1000.0, now=1000.0) == ["inc"], "the carried summary is due now"


def test_rollover_without_repeats_carries_no_summary() -> None:
    store = MemoryStore()
    observe(store, "a", 100.0)
    observe(store, "d", 5000.0)
    doc = store.get("inc", 5000.0).document
    assert doc is not None and doc["outbox"] == []
    assert store.due(until=1e12, now=5000.0) == []


def test_close_incident_summarizes_once_after_the_window_or_when_forced() -> None:
    store = MemoryStore()
    observe(store, "a", 100.0)
    observe(store, "b", 200.0)
    assert not transact(store, "inc", 999.0, close_incident(999.0, False, summary_entry))
    assert transact(store, "inc", 1000.0, close_incident(1000.0, False, summary_entry))
    assert not transact(store, "inc", 1001.0, close_incident(1001.0, False, summary_entry))
    doc = store.get("inc", 1001.0).document
    assert doc is not None and doc["repeats"] == 0 and doc["repeat_ids"] == []
    assert [e["repeats"] for e in doc["outbox"]] == [1]
    # A forced close (end of replay) summarizes an open window; nothing without repeats.
    other = MemoryStore()
    observe(other, "x", 100.0)
    assert not transact(other, "inc", 101.0, close_incident(101.0, True, summary_entry))
    observe(other, "y", 102.0)
    assert transact(other, "inc", 103.0, close_incident(103.0, True, summary_entry))


def test_a_late_repeat_after_the_summary_is_still_summarized() -> None:
    """BUG: a repeat that arrives after the scheduler summarized its window is lost.

    Lambda processes events late (CloudTrail delivery lag, asynchronous retries for hours), so an
    event of window [100, 1000) can arrive after the scheduler closed that window at 1000. It is
    counted into ``repeats`` of a ``summarized`` incident: ``_own_due`` ignores summarized
    incidents, and the rollover only summarizes ``not summarized`` ones, so nobody ever reports it.
    """
    store = MemoryStore()
    observe(store, "a", 100.0)
    observe(store, "b", 200.0)
    assert transact(store, "inc", 1060.0, close_incident(1060.0, False, summary_entry))
    assert observe(store, "late", 900.0, now=1100.0) is Observed.REPEAT
    # Either the scheduler finds it again, or the next window carries it: it must come out.
    transact(store, "inc", 2000.0, close_incident(2000.0, True, summary_entry))
    observe(store, "next", 5000.0)
    doc = store.get("inc", 5000.0).document
    assert doc is not None
    summarized = [i for e in doc["outbox"] for i in e["repeat_ids"]]
    assert sorted(summarized) == ["b", "late"], doc["outbox"]


# --- failures per principal ----------------------------------------------------------------------


def fail(store: MemoryStore, event_id: str, t: float) -> Any:
    return transact(
        store, "fail", t, record_failure(event_id, t, t, 10, 300.0, horizon=1800.0, keep=50)
    )


def test_brute_force_escalates_once_per_burst() -> None:
    store = MemoryStore()
    results = [fail(store, f"e{i}", 1000.0 + 20 * i) for i in range(20)]  # 20 in 380 s
    assert [r.escalate for r in results].count(True) == 1
    assert results[9].escalate and results[9].in_window == 10
    assert results[9].event_ids == tuple(f"e{i}" for i in range(10))
    # A quiet gap longer than the window ends the burst: the next burst escalates again.
    later = [fail(store, f"f{i}", 2000.0 + 10 * i) for i in range(10)]
    assert [r.escalate for r in later] == [False] * 9 + [True]


def test_brute_force_escalates_when_failures_arrive_out_of_order() -> None:
    """BUG: ``record_failure`` only counts failures at or before the *new* event's time, so a
    burst whose events arrive out of order (concurrent Lambda invocations, CloudTrail delivery
    lag) may never see 10 "earlier" failures and never escalates. Here 12 failures within 110 s
    arrive latest-first: every event sees only itself and the later ones as its future."""
    store = MemoryStore()
    results = [fail(store, f"e{i}", 1000.0 + 10 * i) for i in reversed(range(12))]
    assert [r.escalate for r in results].count(True) == 1


def test_slow_failures_do_not_escalate_and_known_events_do_not_count_twice() -> None:
    store = MemoryStore()
    results = [fail(store, f"e{i}", 1000.0 + 40 * i) for i in range(30)]  # 7-8 per 5 minutes
    assert not any(r.escalate for r in results)
    calls = store.calls
    again = fail(store, "e29", 1000.0 + 40 * 29)
    assert store.calls == calls + 1 and not again.escalate
    assert again.in_window == results[-1].in_window


def test_failures_since_reads_the_half_open_interval() -> None:
    store = MemoryStore()
    for i, t in enumerate((100.0, 200.0, 300.0)):
        fail(store, f"e{i}", t)
    assert transact(store, "fail", 300.0, failures_since(100.0, 300.0)) == ("e1", "e2")
    assert transact(store, "fail", 300.0, failures_since(0.0, 250.0)) == ("e0", "e1")


# --- token buckets and storms --------------------------------------------------------------------


def test_token_bucket_empties_and_refills_linearly() -> None:
    store = MemoryStore()

    def take(now: float) -> bool:
        return transact(store, "tb", now, take_token(3, 300.0, now))

    assert [take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not take(99.0), "one token takes period / capacity = 100 s"
    assert take(100.0)
    assert not take(100.0)
    assert [take(1000.0) for _ in range(4)] == [True, True, True, False], "capped at capacity"


def _held(event_id: str, who: str, ip: str, t: float, count: int = 1) -> Held:
    return Held(
        count=count,
        event_ids=(event_id,),
        principal=who,
        source_ip=ip,
        account="111122223333",
        region="us-east-1",
        principal_type="IAMUser",
        first=t,
        last=t,
        kind="alert",
    )


def digest_entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": f"storm:{doc['opened_at']}",
        "destinations": ["alerts"],
        "count": doc["count"],
        "principals": dict(doc["principals"]),
        "ips": dict(doc["ips"]),
        "span": (doc["first"], doc["last"]),
    }


def test_storm_opens_counts_and_flushes_a_digest_when_due() -> None:
    store = MemoryStore()
    assert transact(store, "storm", 10.0, hold_in_storm(_held("a", "u1", "ip1", 9.0), 10.0, 300))
    assert not transact(
        store, "storm", 11.0, hold_in_storm(_held("b", "u2", "ip1", 8.0, count=4), 11.0, 300)
    )
    assert store.due(until=309.0, now=11.0) == []
    assert store.due(until=310.0, now=11.0) == ["storm"]
    assert not transact(store, "storm", 309.0, flush_storm(309.0, False, digest_entry))
    assert transact(store, "storm", 310.0, flush_storm(310.0, False, digest_entry))
    doc = store.get("storm", 310.0).document
    assert doc is not None and doc["count"] == 0
    assert doc["outbox"] == [
        {
            "id": "storm:10.0",
            "destinations": ["alerts"],
            "count": 5,
            "principals": {"u1": 1, "u2": 4},
            "ips": {"ip1": 5},
            "span": [8.0, 9.0],  # JSON: the stored tuple reads back as a list
        }
    ]
    assert not transact(store, "storm", 311.0, flush_storm(311.0, True, digest_entry))
    # The next hold opens a new storm, keeping the undelivered digest.
    assert transact(
        store, "storm", 320.0, hold_in_storm(_held("c", "u3", "ip2", 320.0), 320.0, 300)
    )
    doc = store.get("storm", 320.0).document
    assert doc is not None and doc["count"] == 1 and len(doc["outbox"]) == 1
    assert transact(store, "storm", 321.0, flush_storm(321.0, True, digest_entry))
    doc = store.get("storm", 321.0).document
    assert doc is not None and [e["id"] for e in doc["outbox"]] == ["storm:10.0", "storm:320.0"]


# --- Identity Center workflows -------------------------------------------------------------------


def test_workflow_names_and_ids_merge_and_unchanged_merges_do_not_write() -> None:
    store = MemoryStore()
    transact(store, "wf", 0.0, remember_workflow("", "id-1", 0.0, 3600.0))
    transact(store, "wf", 1.0, remember_workflow("alice", "", 1.0, 3600.0))
    assert store.get("wf", 2.0).document == {"user_name": "alice", "user_id": "id-1"}
    calls = store.calls
    transact(store, "wf", 3.0, remember_workflow("alice", "id-1", 3.0, 3600.0))
    assert store.calls == calls + 1
    assert store.get("wf", 3601.0).document is None, "workflow mapping expires"

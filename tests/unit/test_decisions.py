"""The pure decisions of chalicelib.core.decisions (the typed items: test_documents.py)."""

from __future__ import annotations

from chalicelib.core.decisions import (
    Claim,
    brute_force_burst,
    claim_outcome,
    failures_between,
    failures_to_keep,
    late_fatigue_failures,
    merge_held,
    merge_repeats,
    rate_slot,
)
from chalicelib.core.documents import (
    ClaimStatus,
    EventClaim,
    Held,
    PrincipalFailures,
)


def claim(status: ClaimStatus, lease_until: float) -> EventClaim:
    return EventClaim(status=status, lease_until=lease_until, expires_at=1e9)


def test_claim_outcomes_by_status_and_lease() -> None:
    assert claim_outcome(None, 10.0) is Claim.NEW
    assert claim_outcome(claim(ClaimStatus.DONE, 100.0), 10.0) is Claim.DUPLICATE
    assert claim_outcome(claim(ClaimStatus.PROCESSING, 100.0), 10.0) is Claim.IN_PROGRESS
    assert claim_outcome(claim(ClaimStatus.DECIDED, 100.0), 10.0) is Claim.IN_PROGRESS
    # After the lease: a crashed decision is taken over, a saved one is delivered.
    assert claim_outcome(claim(ClaimStatus.PROCESSING, 5.0), 10.0) is Claim.NEW
    assert claim_outcome(claim(ClaimStatus.DECIDED, 5.0), 10.0) is Claim.PENDING


def test_repeats_merge_exactly_and_deduplicate_retries() -> None:
    repeats = [(30.0, "c", 31.0), (10.0, "a", 12.0), (20.0, "b", 40.0), (10.0, "a", 12.0)]
    merged = merge_repeats(repeats, limit=2)
    assert merged is not None
    assert (merged.count, merged.first, merged.last) == (3, 10.0, 30.0)
    assert merged.event_ids == ("a", "b")  # capped, the count stays exact
    assert merged.written_until == 40.0
    assert merge_repeats([], 10) is None


def history(*failures: tuple[float, str], until: float = 0.0, by: str = "") -> PrincipalFailures:
    return PrincipalFailures(tuple(sorted(failures)), until, by)


def test_brute_force_escalates_once_per_burst_and_again_for_its_retry() -> None:
    nine = [(float(10 * i), f"e{i}") for i in range(9)]
    # A tenth failure delivered late, stamped among the others, completes the burst too.
    assert brute_force_burst(history(*nine), "e-early", 1.0, 10, 300.0).escalate
    burst = brute_force_burst(history(*nine), "e9", 90.0, 10, 300.0)
    assert burst.escalate and burst.in_window == 10 and burst.start == 0.0
    assert burst.until == 390.0 and burst.event_ids[-1] == "e9"
    after = history(*nine, (90.0, "e9"), until=burst.until, by="e9")
    assert not brute_force_burst(after, "e10", 100.0, 10, 300.0).escalate, "same burst"
    assert brute_force_burst(after, "e9", 90.0, 10, 300.0).escalate, "its retry decides again"
    late = [(1000.0 + 10 * i, f"l{i}") for i in range(9)]
    assert brute_force_burst(history(*nine, *late, until=390.0), "l9", 1090.0, 10, 300.0).escalate


def test_brute_force_counts_out_of_order_and_ignores_slow_failures() -> None:
    shuffled = [(float(t), f"e{t}") for t in (50, 0, 80, 20, 70, 10, 60, 30, 40)]
    assert brute_force_burst(history(*shuffled), "late", 5.0, 10, 300.0).escalate
    slow = [(float(100 * i), f"s{i}") for i in range(9)]
    assert not brute_force_burst(history(*slow), "s9", 900.0, 10, 300.0).escalate


def test_failures_between_and_trim() -> None:
    h = history(*[(float(t), f"e{t}") for t in range(0, 200, 10)])
    assert failures_between(h, 100.0, 130.0) == ("e110", "e120", "e130")
    kept = failures_to_keep(h, 190.0, 50.0)
    assert kept == [f"{float(t)!r}|e{t}|" for t in (150, 160, 170, 180, 190)]
    # A trim keeps each failure's source IP (a success from another IP is a takeover).
    with_ips = PrincipalFailures.from_item({"failures": ["10.0|e1|203.0.113.9", "20.0|e2"]})
    assert with_ips.failures == ((10.0, "e1"), (20.0, "e2"))
    assert failures_to_keep(with_ips, 20.0, 60.0) == ["10.0|e1|203.0.113.9", "20.0|e2|"]


def test_late_fatigue_failures_are_those_before_the_success_not_counted_yet() -> None:
    h = history((5.0, "old"), (50.0, "f1"), (60.0, "f2"), (70.0, "f3"), (120.0, "after"))
    # The success at 100 within 60 s counted f1; f3 was also reported by its re-check, and
    # "gone" only there (the principal's item no longer has it).
    reported = [(70.0, "f3"), (80.0, "gone"), (30.0, "too-old")]
    late = late_fatigue_failures(h, reported, t=100.0, window=60.0, counted=("f1",))
    assert late == ("f2", "f3", "gone")
    assert late_fatigue_failures(h, (), 100.0, 60.0, ("f1", "f2", "f3")) == ()


def test_rate_slots_are_fixed_windows() -> None:
    assert rate_slot(0.0, 300.0) == rate_slot(299.9, 300.0) == 0
    assert rate_slot(300.0, 300.0) == 1


def test_held_notifications_merge_into_one_exact_digest() -> None:
    def held(kind: str, who: str, ip: str, count: int, t: float) -> Held:
        ids = tuple(f"{kind}-{who}-{i}" for i in range(count)) if kind != "escalation" else ()
        return Held(kind, count, ids, who, ip, "111122223333", "us-east-1", "IAMUser", t, t + 1)

    stats = merge_held(
        [
            held("alert", "u1", "203.0.113.1", 1, 10.0),
            held("summary", "u1", "203.0.113.1", 4, 20.0),
            held("alert", "u2", "203.0.113.2", 1, 5.0),
            held("escalation", "u1", "203.0.113.1", 0, 30.0),
        ],
        limit=3,
    )
    assert stats is not None
    assert stats.count == 6 and stats.notifications == 4
    assert stats.principals == {"u1": 5, "u2": 1}
    assert stats.ips == {"203.0.113.1": 5, "203.0.113.2": 1}
    assert stats.escalated == {"u1": 1}
    assert stats.event_ids == ("alert-u1-0", "summary-u1-0", "summary-u1-1")  # capped at 3
    assert (stats.first, stats.last) == (5.0, 31.0)
    assert merge_held([], 10) is None

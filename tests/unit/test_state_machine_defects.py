"""Issue 18, defects 1-6 of the state machine: each reproduced deterministically with the
in-memory store, a fake clock (the event and processing times are given) and one injected fault
(:mod:`tests.support.faults`), driven through Lambda's retries and the per-minute scheduler.

Each test asserts what reaches the outputs (kinds, titles, counts, ids), never a boolean. The
tests here are about the whole path (a storm's digest, a held summary across a scheduler crash,
DynamoDB down for the stage, a scheduler redelivery); those about one step are in that step's
test file: the ambiguous claim and lease writes (defect 6) in test_claim.py, the stuck first
event (defect 3) in test_stuck.py and test_principal.py, the order of arrivals (defect 2) in
test_fatigue.py, test_successes.py and test_attribution.py."""

from __future__ import annotations

from collections import Counter

import pytest

from chalicelib.core.config import Settings, Threshold
from chalicelib.core.errors import PublishError
from chalicelib.core.notifications import KIND_ALERT, KIND_STORM
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import IAM_FAILURE, T0, failed_mfa
from tests.support.faults import HOURS, RULES, Fault, FaultyStore, counted, run_lambda, service_on
from tests.support.faults import at as at_time

# --- 1. storm mode without a digest ----------------------------------------------------------


def test_a_fault_when_a_storm_opens_still_sends_the_storm_digest() -> None:
    # Twelve users from one address are also an MFA spray, whose escalation would take a slot
    # of the topic's window: this test is about the storm alone.
    settings = Settings(
        topic_rate=Threshold(3, 5), principal_rate=Threshold(100, 5), mfa_spray=Threshold(100, 15)
    )
    # The first write of the storm's item (its digest's due time) fails once.
    store = FaultyStore(MemoryStore(), [Fault("update", "storm#")])
    service = service_on(store, settings)
    deliveries = [
        (T0 + i, IAM_FAILURE, failed_mfa(f"e{i:02d}", i, user=f"user{i}")) for i in range(12)
    ]
    run = run_lambda(service, deliveries, until=T0 + 4 * HOURS)
    kinds = Counter(n.kind for n in run.sent)
    assert kinds[KIND_ALERT] == 3
    digests = [n for n in run.sent if n.kind == KIND_STORM]
    assert digests, [n.title for n in run.sent]
    assert digests[-1].title.startswith("Alert storm ended: ")
    assert counted(run.sent) == 12
    assert run.parked == []


# --- 4. a held summary re-sent after a scheduler crash ------------------------------------------


def test_a_summary_held_before_a_scheduler_crash_counts_the_repeats_of_its_retry() -> None:
    settings = Settings(topic_rate=Threshold(1, 5), principal_rate=Threshold(100, 5))
    # The look that holds the summary saves its held record, then fails to advance the window
    # (the leading event's claim update with the new cutoff): the scheduler retries it.
    store = FaultyStore(
        MemoryStore(),
        [Fault("update", f"evt#{IAM_FAILURE}#a", when=lambda _, request: "v" in request["add"])],
    )
    service = service_on(store, settings)
    deliveries = [
        (T0, IAM_FAILURE, failed_mfa("a", 0)),
        (T0 + 10, IAM_FAILURE, failed_mfa("b", 10)),
        (T0 + 20, IAM_FAILURE, failed_mfa("c", 20)),
        # Another principal spends the topic's window: the summary will be held.
        (T0 + 995, IAM_FAILURE, failed_mfa("x", 995, user="bob")),
        # A repeat of the window processed late (a retried invocation), after the first look.
        (T0 + 1030, IAM_FAILURE, failed_mfa("d", 30)),
    ]
    run = run_lambda(service, deliveries, until=T0 + 4 * HOURS)
    assert [n.kind for n in run.sent if n.kind != KIND_STORM] == [KIND_ALERT, KIND_ALERT]
    digests = [n for n in run.sent if n.kind == KIND_STORM]
    assert sum(n.count for n in digests) == 3, [n.title for n in digests]
    assert sorted(e for n in digests for e in n.event_ids) == ["b", "c", "d"]
    assert counted(run.sent) == 5


# --- 5. fail-open floods -----------------------------------------------------------------------


def test_dynamodb_down_gives_a_bounded_number_of_marked_copies_for_the_whole_stage() -> None:
    # DynamoDB fails every request; 120 failed MFA sign-ins in two minutes reach 30 execution
    # environments, and each attempt (Lambda tries 3 times) lands in another environment.
    store = FaultyStore(
        MemoryStore(), [Fault(op, times=None) for op in ("get", "put", "update", "due")]
    )
    settings = Settings()
    publisher = MemoryPublisher(settings)
    environments = [AlertService(RULES, publisher, store, settings) for _ in range(30)]
    deliveries = [
        (T0 + i + 1, IAM_FAILURE, failed_mfa(f"e{i:03d}", i, user=f"user{i % 40}"))
        for i in range(120)
    ]
    run = run_lambda(environments, deliveries, until=T0 + 600, tick=False)
    assert len(run.parked) == 120  # the deduplicated path counts them once DynamoDB is back
    copies = publisher.published
    assert {n.count for n in copies} == {0}
    assert all(n.notes[0].startswith("dedup unavailable") for n in copies)
    # At most 10 distinct marked copies per rule and minute, whatever the environments.
    distinct = {n.id for n in copies}
    assert len(distinct) <= 2 * 10, len(distinct)
    # An event keeps its copy across its retries: one id per event.
    ids_of_event: dict[str, set[str]] = {}
    for n in copies:
        ids_of_event.setdefault(n.event_ids[0], set()).add(n.id)
    assert max(len(ids) for ids in ids_of_event.values()) == 1
    # An environment publishes at most one copy a minute: the attempts span 6 minutes.
    assert len(copies) <= 30 * 6, len(copies)


def test_a_scheduler_redelivery_whose_lease_write_was_re_sent_still_delivers() -> None:
    # The alert's publish fails; the scheduler's takeover of the claim's lease is applied, its
    # reply lost and re-sent by botocore (the re-sent write fails its own condition).
    store = FaultyStore(
        MemoryStore(),
        [
            Fault(
                "update",
                f"evt#{IAM_FAILURE}#a",
                kind="ambiguous",
                when=lambda _, r: r["condition"] is not None and r["now"] > T0 + 60,
            )
        ],
    )
    settings = Settings()
    publisher = MemoryPublisher(settings, failing={"alerts"})
    service = AlertService(RULES, publisher, store, settings)
    with pytest.raises(PublishError):
        service.handle(IAM_FAILURE, failed_mfa("a", 0), at_time(T0))
    publisher.failing.clear()  # SNS recovers; the scheduler redelivers before Lambda retries
    sent = service.tick(at_time(T0 + 120))
    assert [(n.kind, n.id) for n in sent] == [(KIND_ALERT, f"alert:{IAM_FAILURE}:a")]

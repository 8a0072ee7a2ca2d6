"""Issue 18, defects 1-6 of the state machine: each reproduced deterministically with the
in-memory store, a fake clock (the event and processing times are given) and one injected fault
(:mod:`tests.support.faults`), driven through Lambda's retries and the per-minute scheduler.

Each test asserts what reaches the outputs (kinds, titles, counts, ids), never a boolean."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from chalicelib.core.config import Settings, Threshold
from chalicelib.core.errors import PublishError
from chalicelib.core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
)
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import (
    IAM_FAILURE,
    IC_FAILURE,
    IC_STEPS,
    SUCCESS,
    T0,
    failed_mfa,
    ic_mfa_failure,
    ic_naming_step,
    signed_in,
)
from tests.support.faults import Fault, FaultyStore, run_lambda
from tests.support.faults import at as at_time
from tests.support.simulation import OUTPUTS

RULES: RuleSet = load_bundle()
COUNTED = (KIND_ALERT, KIND_SUMMARY, KIND_STORM)
FATIGUE = "escalation:fatigue-success:"
HOURS = 3600.0


def counted(sent: list[Notification], rule_id: str = IAM_FAILURE) -> int:
    """Events the outputs were told about: alert + summary + storm digest counts."""
    return sum(n.count for n in sent if n.kind in COUNTED and n.rule_id == rule_id)


def service_on(store: FaultyStore, settings: Settings | None = None) -> AlertService:
    settings = settings or Settings()
    return AlertService(RULES, MemoryPublisher(settings), store, settings)


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


# --- 6. ambiguous retries ----------------------------------------------------------------------


def test_a_claim_applied_but_unacknowledged_is_recognised_as_the_invocations_own() -> None:
    # The claim's PutItem is applied, its reply lost; botocore sends it again and the retry
    # fails its own condition, returning the claim the first attempt wrote.
    store = FaultyStore(MemoryStore(), [Fault("put", f"evt#{IAM_FAILURE}#a", kind="ambiguous")])
    service = service_on(store)
    run = run_lambda(service, [(T0, IAM_FAILURE, failed_mfa("a", 0))], until=T0 + 600)
    assert run.errors == []
    (alert,) = run.sent
    assert (alert.kind, alert.title) == (
        KIND_ALERT,
        "Failed MFA sign-in for IAM user alice from 203.0.113.7",
    )
    assert alert.first_seen.timestamp() == T0


def test_a_lease_takeover_applied_but_unacknowledged_is_the_takers_own() -> None:
    # The first attempt's save fails (the claim is released); the retry's takeover of the claim
    # is applied, its reply lost, and botocore's retry fails the lease condition.
    store = FaultyStore(
        MemoryStore(),
        [
            Fault("update", f"evt#{IAM_FAILURE}#a", when=lambda _, r: "outbox" in r["set_values"]),
            Fault(
                "update",
                f"evt#{IAM_FAILURE}#a",
                kind="ambiguous",
                when=lambda _, r: r["condition"] is not None,
            ),
        ],
    )
    service = service_on(store)
    run = run_lambda(service, [(T0, IAM_FAILURE, failed_mfa("a", 0))], until=T0 + 600)
    assert len(run.errors) == 1, run.errors  # the injected save failure, nothing else
    (alert,) = run.sent
    assert alert.id == f"alert:{IAM_FAILURE}:a"


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


# --- 3. a stuck first event ------------------------------------------------------------------


def burst(n: int, user: str = "alice") -> list[tuple[float, str, dict[str, object]]]:
    """``n`` failed MFA sign-ins of one user from one IP, a second apart."""
    return [(T0 + i, IAM_FAILURE, failed_mfa(f"f{i:02d}", i, user=user)) for i in range(n)]


def test_a_first_event_that_fails_every_attempt_does_not_silence_its_incident() -> None:
    # Every write to the first event's claim after the claim itself fails for as long as Lambda
    # tries it (attempts at 0, 60 and 180 s): the event opened the incident and never saves
    # its decision. Every other failure of the window is a repeat of it.
    store = FaultyStore(
        MemoryStore(),
        [
            Fault(
                "update",
                f"evt#{IAM_FAILURE}#f00",
                times=None,
                when=lambda _, request: request["now"] <= T0 + 180,
            )
        ],
    )
    service = service_on(store)
    run = run_lambda(service, burst(17), until=T0 + 2 * HOURS)
    assert run.parked == ["f00"]  # Lambda gave up on it
    alerts = [n for n in run.sent if n.kind == KIND_ALERT]
    assert [(n.title, n.event_ids) for n in alerts] == [
        ("Failed MFA sign-in for IAM user alice from 203.0.113.7", ("f00",))
    ]
    (summary,) = [n for n in run.sent if n.kind == KIND_SUMMARY]
    assert summary.title == "16 more failed MFA attempts for alice from 203.0.113.7"
    assert sorted(summary.event_ids) == [f"f{i:02d}" for i in range(1, 17)]
    assert counted(run.sent) == 17


def test_a_first_event_whose_item_always_fails_is_stood_in_for() -> None:
    # Every write to the first event's claim fails, whoever tries, for good (a poison item):
    # after two tries of the scheduler, a stand-in claim leads the window in its place.
    stuck = f"evt#{IAM_FAILURE}#f00"
    store = FaultyStore(
        MemoryStore(), [Fault("update", stuck, times=None, when=lambda key, _: key == stuck)]
    )
    service = service_on(store)
    run = run_lambda(service, burst(17), until=T0 + 2 * HOURS)
    assert run.parked == ["f00"]
    alerts = [n for n in run.sent if n.kind == KIND_ALERT]
    assert [(n.id, n.title, n.event_ids) for n in alerts] == [
        (
            f"alert:{IAM_FAILURE}:f00",
            "Failed MFA sign-in for IAM user alice from 203.0.113.7",
            ("f00",),
        )
    ]
    (summary,) = [n for n in run.sent if n.kind == KIND_SUMMARY]
    assert summary.title == "16 more failed MFA attempts for alice from 203.0.113.7"
    assert counted(run.sent) == 17
    # The stuck event decided again later (the failed-events queue) counts nothing more.
    store.faults.clear()
    assert service.handle(IAM_FAILURE, burst(1)[0][2], at_time(T0 + 3 * HOURS)) == []
    assert isinstance(service.delivery.publisher, MemoryPublisher)
    assert counted(service.delivery.publisher.sent) == 17


def test_a_fault_when_the_stand_in_takes_over_does_not_silence_the_window() -> None:
    # The first event's claim refuses every write for six minutes (its three Lambda attempts and
    # the scheduler's two tries), so the scheduler's third try hands the window to a stand-in;
    # the stand-in's claim fails once when it is first written. Whoever comes next (the next
    # scheduler run, the failed-events queue re-running f00) must finish the handover.
    stuck = f"evt#{IAM_FAILURE}#f00"
    store = FaultyStore(
        MemoryStore(),
        [
            Fault(
                "update",
                stuck,
                times=None,
                when=lambda key, request: key == stuck and request["now"] <= T0 + 360,
            ),
            Fault("put", f"{stuck}#stand-in"),
        ],
    )
    service = service_on(store)
    # f00 is parked after its third attempt; the failed-events consumer re-runs it 20 minutes on.
    deliveries = [*burst(17), (T0 + 1200, IAM_FAILURE, burst(1)[0][2])]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    assert store.faults[1].hits == 1, "the stand-in's first write failed"
    alerts = [n for n in run.sent if n.kind == KIND_ALERT]
    assert [(n.id, n.event_ids) for n in alerts] == [(f"alert:{IAM_FAILURE}:f00", ("f00",))]
    (summary,) = [n for n in run.sent if n.kind == KIND_SUMMARY]
    assert summary.title == "16 more failed MFA attempts for alice from 203.0.113.7"
    assert counted(run.sent) == 17


def test_an_escalating_event_that_fails_every_attempt_does_not_lose_the_escalation() -> None:
    # The tenth failure completes the burst (10 in 5 minutes) and marks the escalation; every
    # later write to its claim fails, whoever tries.
    store = FaultyStore(MemoryStore(), [Fault("update", f"evt#{IAM_FAILURE}#f09", times=None)])
    service = service_on(store)
    run = run_lambda(service, burst(12), until=T0 + 2 * HOURS)
    assert run.parked == ["f09"]
    (escalation,) = [n for n in run.sent if n.kind == KIND_ESCALATION]
    assert escalation.title == (
        "Possible MFA brute force / fatigue: 10 failed MFA attempts for alice in 5 minutes"
    )
    assert escalation.event_ids == tuple(f"f{i:02d}" for i in range(10))
    assert counted(run.sent) == 11  # f09 is counted once the failed-events queue is read


# --- 2. order matters --------------------------------------------------------------------------


def test_a_success_processed_before_its_failed_mfa_attempts_still_raises_fatigue_success() -> None:
    store = FaultyStore(MemoryStore())
    service = service_on(store)
    deliveries = [
        # The successful sign-in at 100 s is processed at once; the four failed MFA attempts
        # before it arrive late (their first invocations failed: Lambda retried them).
        (T0 + 101, SUCCESS, signed_in("ok", 100)),
        *((T0 + 160 + i, IAM_FAILURE, failed_mfa(f"f{i}", 10 * (i + 1))) for i in range(4)),
    ]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    (fatigue,) = [n for n in run.sent if n.kind == KIND_ESCALATION and n.severity == "CRITICAL"]
    assert fatigue.title == (
        "MFA fatigue success: alice signed in from 203.0.113.7 after 3 failed MFA attempts"
    )
    assert fatigue.event_ids == ("ok", "f0", "f1", "f2")
    assert fatigue.dedup_key == "fatigue-success:111122223333|alice"
    assert counted(run.sent) == 4


def test_a_failure_processed_after_its_fatigue_success_was_escalated_comes_in_a_correction() -> (
    None
):
    """The CRITICAL says what was known when it was decided (f3 came a second later); one
    trailing correction, on both outputs, completes the count. Before: "after 3", nothing
    after, although alice's sign-in followed 4 failed MFA attempts."""
    store = FaultyStore(MemoryStore())
    service = service_on(store, Settings(outputs=OUTPUTS))
    deliveries = [
        (T0 + 101, SUCCESS, signed_in("ok", 100)),
        *((T0 + 160 + i, IAM_FAILURE, failed_mfa(f"f{i}", 10 * (i + 1))) for i in range(4)),
    ]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    escalations = [n for n in run.sent if n.kind == KIND_ESCALATION]
    assert [(n.severity, n.title, n.count, n.event_ids) for n in escalations] == [
        (
            "CRITICAL",
            "MFA fatigue success: alice signed in from 203.0.113.7 after 3 failed MFA attempts",
            3,
            ("ok", "f0", "f1", "f2"),
        ),
        (
            "HIGH",
            "MFA fatigue success of alice: 1 more failed MFA attempt before the sign-in (4 in all)",
            1,
            ("ok", "f3"),
        ),
    ]
    correction = escalations[1]
    assert correction.id == "escalation:fatigue-success:ok:late:3"
    assert correction.dedup_key == "fatigue-success:111122223333|alice"
    assert "followed 4 failed MFA attempts within 30 minutes, not 3" in correction.summary
    publisher = service.delivery.publisher
    assert isinstance(publisher, MemoryPublisher)
    assert sorted(o for o, n in publisher.deliveries if n.id == correction.id) == [
        "alerts",
        "pager",
    ]
    assert counted(run.sent) == 4


def test_a_failure_processed_long_after_a_fatigue_success_still_corrects_it_once() -> None:
    """A failure parked by an outage and re-run by the failed-events consumer an hour later:
    its re-check of the success makes the success due for one more look."""
    store = FaultyStore(MemoryStore())
    service = service_on(store)
    deliveries = [
        *((T0 + 11 + 10 * i, IAM_FAILURE, failed_mfa(f"f{i}", 10 * (i + 1))) for i in range(3)),
        (T0 + 101, SUCCESS, signed_in("ok", 100)),
        # Happened at 45 s, before the success; processed 25 minutes later.
        (T0 + 1500, IAM_FAILURE, failed_mfa("late", 45)),
        (T0 + 1510, IAM_FAILURE, failed_mfa("late", 45)),  # and delivered twice
    ]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    fatigue = [(n.severity, n.count) for n in run.sent if n.id.startswith(FATIGUE)]
    assert fatigue == [("CRITICAL", 3), ("HIGH", 1)]
    (correction,) = [n for n in run.sent if n.id.startswith(FATIGUE) and n.severity == "HIGH"]
    assert correction.event_ids == ("ok", "late")
    assert correction.title.endswith("1 more failed MFA attempt before the sign-in (4 in all)")


def test_a_success_without_failed_attempts_stays_silent_whatever_comes_later() -> None:
    store = FaultyStore(MemoryStore())
    service = service_on(store)
    deliveries = [
        (T0 + 101, SUCCESS, signed_in("ok", 100)),
        # Failures after the success, and another user's, are no fatigue of this sign-in.
        *((T0 + 160 + i, IAM_FAILURE, failed_mfa(f"f{i}", 200 + i)) for i in range(4)),
        *((T0 + 170 + i, IAM_FAILURE, failed_mfa(f"g{i}", 50 + i, user="bob")) for i in range(4)),
    ]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    assert [n for n in run.sent if n.kind == KIND_ESCALATION] == []


def test_an_identity_center_failure_processed_before_its_naming_step_is_attributed() -> None:
    store = FaultyStore(MemoryStore())
    service = service_on(store)
    deliveries = [
        # The failed MFA step names nobody; the password step of the same sign-in, which names
        # the user, is processed a minute later (its first invocation failed).
        (T0 + 31, IC_FAILURE, ic_mfa_failure("mfa-1", 30, workflow="wf-1")),
        (T0 + 80, IC_STEPS, ic_naming_step("pw-1", 20, workflow="wf-1", user="jane@example.com")),
        (T0 + 95, IC_FAILURE, ic_mfa_failure("mfa-2", 90, workflow="wf-1")),
    ]
    run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
    (alert,) = [n for n in run.sent if n.kind == KIND_ALERT]
    assert (
        alert.title == "Failed Identity Center MFA (TOTP) for jane@example.com from 198.51.100.23"
    )
    assert alert.dedup_key == "111122223333|jane@example.com|198.51.100.23"
    assert alert.event_ids == ("mfa-1",)
    (summary,) = [n for n in run.sent if n.kind == KIND_SUMMARY]
    assert summary.event_ids == ("mfa-2",)
    # Both failures count for jane's bursts, none for an unnamed user of that IP.
    jane = store.get("prn#111122223333#jane@example.com", T0 + 100)
    assert jane is not None
    assert sorted(e.split("|")[1] for e in jane["failures"]) == ["mfa-1", "mfa-2"]
    assert store.get("prn#111122223333#unknown-user@198.51.100.23", T0 + 100) is None


def test_an_identity_center_failure_never_named_is_alerted_after_the_retry_horizon() -> None:
    store = FaultyStore(MemoryStore())
    service = service_on(store)
    run = run_lambda(
        service,
        [(T0 + 31, IC_FAILURE, ic_mfa_failure("mfa-1", 30, workflow="wf-lonely"))],
        until=T0 + 2 * HOURS,
    )
    (alert,) = run.sent
    assert alert.title.startswith("Failed Identity Center MFA (TOTP) for unknown user")
    assert alert.dedup_key == "111122223333|unknown-user|198.51.100.23"
    assert alert.event_ids == ("mfa-1",)
    # Late by the retry horizon at most (the naming step's Lambda retries), never silent.
    assert alert.notes == ()


def _outcome(sent: list[Notification]) -> tuple[object, ...]:
    """The escalations the outputs got, and the events counted (whichever event of an incident
    came first and led it)."""
    escalations = sorted(
        (n.severity, n.title, tuple(sorted(n.event_ids))) for n in sent if n.kind == KIND_ESCALATION
    )
    return (*escalations, tuple(sorted(e for n in sent if n.kind in COUNTED for e in n.event_ids)))


def test_every_arrival_order_of_a_fatigue_success_gives_the_same_escalation() -> None:
    events = [
        (SUCCESS, signed_in("ok", 100)),
        *((IAM_FAILURE, failed_mfa(f"f{i}", 10 * (i + 1))) for i in range(3)),
    ]
    outcomes = set()
    for order in itertools.permutations(events):
        service = service_on(FaultyStore(MemoryStore()))
        # Every order within Lambda's retry horizon: processed 20 s apart.
        deliveries = [(T0 + 110 + 20 * k, rule, event) for k, (rule, event) in enumerate(order)]
        run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
        outcomes.add(tuple(_outcome(run.sent)))
    (outcome,) = outcomes
    assert outcome == (
        (
            "CRITICAL",
            "MFA fatigue success: alice signed in from 203.0.113.7 after 3 failed MFA attempts",
            ("f0", "f1", "f2", "ok"),
        ),
        ("f0", "f1", "f2"),
    )


def test_every_arrival_order_of_an_identity_center_sign_in_names_the_user() -> None:
    events = [
        (IC_STEPS, ic_naming_step("pw-1", 20, workflow="wf-1", user="jane@example.com")),
        (IC_FAILURE, ic_mfa_failure("mfa-1", 30, workflow="wf-1")),
        (IC_FAILURE, ic_mfa_failure("mfa-2", 40, workflow="wf-1")),
    ]
    for order in itertools.permutations(events):
        service = service_on(FaultyStore(MemoryStore()))
        deliveries = [(T0 + 50 + 20 * k, rule, event) for k, (rule, event) in enumerate(order)]
        run = run_lambda(service, deliveries, until=T0 + 2 * HOURS)
        assert sorted((n.kind, n.dedup_key) for n in run.sent) == [
            (KIND_ALERT, "111122223333|jane@example.com|198.51.100.23"),
            (KIND_SUMMARY, "111122223333|jane@example.com|198.51.100.23"),
        ], [n.title for n in run.sent]
        assert counted(run.sent, IC_FAILURE) == 2


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

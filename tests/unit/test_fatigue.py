"""MFA fatigue after the fact: failures processed after the success they precede still raise
the escalation, or a correction of it, once and the same in every arrival order."""

from __future__ import annotations

import itertools

from chalicelib.core.config import Settings
from chalicelib.core.notifications import KIND_ESCALATION, Notification
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import MemoryPublisher
from tests.support.events import IAM_FAILURE, SUCCESS, T0, failed_mfa, signed_in
from tests.support.faults import COUNTED, HOURS, FaultyStore, counted, run_lambda, service_on
from tests.support.simulation import OUTPUTS

FATIGUE = "escalation:fatigue-success:"


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

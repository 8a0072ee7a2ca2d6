"""Stuck leaders: a first event that never saves its decision does not silence its incident; the
scheduler decides it again, then hands the window to a stand-in, whatever fails on the way."""

from __future__ import annotations

from chalicelib.core.notifications import KIND_ALERT, KIND_SUMMARY
from chalicelib.core.state import MemoryStore
from chalicelib.pipeline.service import MemoryPublisher
from tests.support.events import IAM_FAILURE, T0, burst
from tests.support.faults import HOURS, Fault, FaultyStore, counted, run_lambda, service_on
from tests.support.faults import at as at_time


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

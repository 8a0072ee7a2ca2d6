"""The principal step: a completed burst's escalation survives an escalating event that fails
every attempt."""

from __future__ import annotations

from chalicelib.core.notifications import KIND_ESCALATION
from chalicelib.core.state import MemoryStore
from tests.support.events import IAM_FAILURE, T0, burst
from tests.support.faults import HOURS, Fault, FaultyStore, counted, run_lambda, service_on


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

"""Successes: a sign-in with no failed MFA attempts before it escalates nothing, whatever is
processed after it."""

from __future__ import annotations

from chalicelib.core.notifications import KIND_ESCALATION
from chalicelib.core.state import MemoryStore
from tests.support.events import IAM_FAILURE, SUCCESS, T0, failed_mfa, signed_in
from tests.support.faults import HOURS, FaultyStore, run_lambda, service_on


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

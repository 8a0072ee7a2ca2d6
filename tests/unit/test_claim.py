"""The claim step under ambiguous retries: a claim, or a lease takeover, applied but whose reply was
lost is recognised as the attempt's own when botocore's retry fails its condition."""

from __future__ import annotations

from chalicelib.core.notifications import KIND_ALERT
from chalicelib.core.state import MemoryStore
from tests.support.events import IAM_FAILURE, T0, failed_mfa
from tests.support.faults import Fault, FaultyStore, run_lambda, service_on


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

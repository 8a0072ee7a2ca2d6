"""Identity Center attribution: a failed MFA step that names nobody is attributed to the user a
later-processed step of its workflow names, or alerted as unknown after the retry horizon."""

from __future__ import annotations

import itertools

from chalicelib.core.notifications import KIND_ALERT, KIND_SUMMARY
from chalicelib.core.state import MemoryStore
from tests.support.events import IC_FAILURE, IC_STEPS, T0, ic_mfa_failure, ic_naming_step
from tests.support.faults import HOURS, FaultyStore, counted, run_lambda, service_on


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

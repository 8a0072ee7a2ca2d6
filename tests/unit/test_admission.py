"""Admission with suppressions: what a suppression matches is held and counted in its rule's
digest, never sent as an alert; near misses alert beside it; CRITICAL goes out unless allowed;
an escalation is held or sent as its own severity says."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from chalicelib.core.notifications import KIND_ALERT, KIND_ESCALATION, KIND_NOTICE, KIND_STORM
from chalicelib.core.suppressions import Suppressions
from tests.support.events import (
    BASE,
    IAM_FAILURE,
    SUCCESS,
    failed_mfa,
    in_account,
    root_success_without_mfa,
    signed_in,
)
from tests.support.suppressions import (
    LATER,
    OWNER,
    REASON,
    counted,
    notices,
    pentest,
    run,
    suppression,
)

ROOT_NO_MFA = "root-console-success-without-mfa"


def test_a_suppression_silences_what_it_matches_and_the_digest_counts_it() -> None:
    events = [(IAM_FAILURE, failed_mfa(f"e{i}", 10.0 * i), 10.0 * i) for i in range(3)]
    sent = run(pentest(), events)
    # The alert is held into the digest due a rate period later, the window's summary of the
    # two repeats into the next one: no alert and no summary reach an output.
    assert [n.kind for n in sent] == [KIND_STORM, KIND_STORM]
    assert [(d.severity, d.title) for d in sent] == [
        ("LOW", "Suppressed: 1 failed MFA attempt (alice, 203.0.113.7)"),
        ("LOW", "Suppressed: 2 failed MFA attempts (alice, 203.0.113.7)"),
    ]
    assert sent[0].summary.endswith(f" 1 suppressed by pentest-q4 ({OWNER}, {REASON}).")
    assert sent[1].summary.endswith(f" 2 suppressed by pentest-q4 ({OWNER}, {REASON}).")
    assert counted(sent) == 3, "suppressed events are still counted, each once"


def test_near_misses_alert_beside_a_suppressed_incident() -> None:
    events = [
        (IAM_FAILURE, failed_mfa("s1", 0), 0.0),
        (IAM_FAILURE, failed_mfa("other-ip", 5, ip="203.0.114.7"), 5.0),
        (IAM_FAILURE, in_account(failed_mfa("other-account", 6), "444455556666"), 6.0),
        (IAM_FAILURE, failed_mfa("bob", 7, user="bob"), 7.0),
    ]
    sent = run(pentest(), events)
    alerts = sorted(n.event_ids[0] for n in sent if n.kind == KIND_ALERT)
    assert alerts == ["bob", "other-account", "other-ip"]
    digests = [n for n in sent if n.kind == KIND_STORM]
    assert [(d.count, d.severity) for d in digests] == [(1, "LOW")]
    assert counted(sent) == 4


def test_an_expired_suppression_lets_the_alert_out_from_its_date() -> None:
    expires = (BASE + timedelta(days=1)).date()  # 2026-11-03: events of the 2nd are suppressed
    day_before = 0.0
    on_the_date = (datetime(2026, 11, 3, tzinfo=BASE.tzinfo) - BASE).total_seconds() + 60
    sent = run(
        pentest(expires),
        [
            (IAM_FAILURE, failed_mfa("before", day_before), day_before),
            (IAM_FAILURE, failed_mfa("on-date", on_the_date), on_the_date),
        ],
    )
    kinds = Counter((n.kind, n.event_ids[0]) for n in sent if n.kind != KIND_NOTICE)
    assert kinds == Counter({(KIND_STORM, "before"): 1, (KIND_ALERT, "on-date"): 1})
    assert len(notices(sent)) == 1, "it expired within the week: its notice came once"


def test_critical_alerts_go_out_unless_the_suppression_allows_critical() -> None:
    match = {"principals": ["root"]}
    plain = Suppressions([suppression("root-work", LATER, match=match)])
    event = [(ROOT_NO_MFA, root_success_without_mfa("r1", 0), 0.0)]
    (alert,) = run(plain, event)
    assert (alert.kind, alert.severity) == (KIND_ALERT, "CRITICAL")
    allowed = Suppressions([suppression("root-work", LATER, match=match, allow_critical=True)])
    (digest,) = run(allowed, event)
    assert digest.kind == KIND_STORM and "1 suppressed by root-work" in digest.summary


def test_a_suppressed_burst_escalation_is_held_and_named_in_the_digest() -> None:
    events = [(IAM_FAILURE, failed_mfa(f"e{i:02d}", 10.0 * i), 10.0 * i) for i in range(12)]
    sent = run(pentest(), events)
    assert {n.kind for n in sent} == {KIND_STORM}, "no alert, summary nor HIGH escalation"
    assert counted(sent) == 12
    named = [n.summary for n in sent if "escalation" in n.summary]
    assert len(named) == 1
    assert named[0].endswith(f"1 suppressed by pentest-q4 ({OWNER}, {REASON}), with 1 escalation.")


def test_an_mfa_fatigue_success_goes_out_even_when_its_failures_are_suppressed() -> None:
    alice = Suppressions([suppression("alice-all", LATER)])  # every rule, alice only
    events: list[tuple[str, dict[str, object], float]] = [
        (IAM_FAILURE, failed_mfa(f"f{i}", 10.0 * i), 10.0 * i) for i in range(3)
    ]
    events.append((SUCCESS, signed_in("ok", 40.0), 40.0))
    sent = run(alice, events)
    (escalation,) = [n for n in sent if n.kind == KIND_ESCALATION]
    assert (escalation.severity, escalation.event_ids[0]) == ("CRITICAL", "ok")
    assert {n.kind for n in sent} == {KIND_ESCALATION, KIND_STORM}
    assert counted(sent) == 3


def test_the_correction_of_an_mfa_fatigue_success_goes_out_as_its_critical_does() -> None:
    """A failure before the success processed after it: the HIGH correction is suppressed only
    as the CRITICAL it corrects would be (a suppression that allows CRITICAL)."""
    events: list[tuple[str, dict[str, object], float]] = [
        *((IAM_FAILURE, failed_mfa(f"f{i}", 10.0 * i), 10.0 * i) for i in range(3)),
        (SUCCESS, signed_in("ok", 40.0), 40.0),
        (IAM_FAILURE, failed_mfa("f-late", 35.0), 50.0),
    ]
    for suppressions, expected in (
        (Suppressions([suppression("alice-all", LATER)]), [("CRITICAL", 3), ("HIGH", 1)]),
        (Suppressions([suppression("alice-all", LATER, allow_critical=True)]), []),
    ):
        sent = run(suppressions, events)
        assert [(n.severity, n.count) for n in sent if n.kind == KIND_ESCALATION] == expected
        assert counted(sent) == 4

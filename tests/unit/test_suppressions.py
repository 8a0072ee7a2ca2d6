"""Suppressions at run time: pure matching (near misses, CRITICAL, expiry on an injected clock)
and the one hook in the decision path (held, counted in the digest, never sent as an alert)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.notifications import (
    KIND_ALERT,
    KIND_ESCALATION,
    KIND_NOTICE,
    KIND_STORM,
    KIND_SUMMARY,
    Notification,
)
from chalicelib.core.records import parse_event
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.core.state import MemoryStore
from chalicelib.core.suppressions import Suppressions
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.support.events import (
    BASE,
    IAM_FAILURE,
    SUCCESS,
    failed_mfa,
    in_account,
    root_success_without_mfa,
    signed_in,
)
from tests.support.suppressions import OWNER, REASON, suppression

RULES: RuleSet = load_bundle()
ROOT_NO_MFA = "root-console-success-without-mfa"
ACCOUNT = "111122223333"
TODAY = BASE.date()
#: Expires in 30 days: active for every event of these tests unless a test says otherwise.
LATER = TODAY + timedelta(days=30)


@dataclass(frozen=True)
class Who:
    principal: str = "alice"
    account: str = ACCOUNT
    source_ip: str = "203.0.113.7"


def pentest(expires: date = LATER, **fields: object) -> Suppressions:
    match = {
        "rules": [IAM_FAILURE],
        "principals": ["alice"],
        "accounts": [ACCOUNT],
        "source_cidrs": ["203.0.113.0/24", "2001:db8::/32"],
    }
    return Suppressions([suppression("pentest-q4", expires, match=match, **fields)])


def t(moment: datetime) -> float:
    return moment.timestamp()


# --- pure matching ------------------------------------------------------------------------------


def test_a_suppression_matches_every_field_it_names() -> None:
    found = pentest().matching(Who(), IAM_FAILURE, "HIGH", t(BASE))
    assert found is not None and found.id == "pentest-q4"
    assert found.label == f"pentest-q4 ({OWNER}, {REASON})"
    assert pentest().matching(Who(source_ip="2001:db8::7"), IAM_FAILURE, "HIGH", t(BASE))


@pytest.mark.parametrize(
    ("who", "rule_id"),
    [
        (Who(account="444455556666"), IAM_FAILURE),  # another account
        (Who(source_ip="203.0.114.7"), IAM_FAILURE),  # an IP just outside the /24
        (Who(source_ip="2001:db9::7"), IAM_FAILURE),  # outside the IPv6 /32
        (Who(source_ip="AWS Internal"), IAM_FAILURE),  # not an address: no CIDR holds it
        (Who(principal="bob"), IAM_FAILURE),  # another principal
        (Who(principal="Alice"), IAM_FAILURE),  # names are compared exactly
        (Who(), "root-console-failure"),  # another rule
    ],
)
def test_near_misses_are_not_suppressed(who: Who, rule_id: str) -> None:
    assert pentest().matching(who, rule_id, "HIGH", t(BASE)) is None


def test_a_field_left_out_matches_anything() -> None:
    only_ip = Suppressions(
        [suppression("scanner", LATER, match={"source_cidrs": ["198.51.100.0/24"]})]
    )
    who = Who(principal="anyone", account="444455556666", source_ip="198.51.100.9")
    assert only_ip.matching(who, "root-console-failure", "HIGH", t(BASE)) is not None


def test_critical_is_never_suppressed_unless_the_suppression_says_so() -> None:
    assert pentest().matching(Who(), IAM_FAILURE, "CRITICAL", t(BASE)) is None
    allowed = pentest(allow_critical=True)
    assert allowed.matching(Who(), IAM_FAILURE, "CRITICAL", t(BASE)) is not None


def test_an_expired_suppression_stops_applying_on_its_date() -> None:
    expires = date(2026, 11, 10)
    day_before = datetime(2026, 11, 9, 23, 59, 59, tzinfo=BASE.tzinfo)
    on_the_date = datetime(2026, 11, 10, tzinfo=BASE.tzinfo)
    suppressions = pentest(expires)
    assert suppressions.matching(Who(), IAM_FAILURE, "HIGH", t(day_before)) is not None
    assert suppressions.matching(Who(), IAM_FAILURE, "HIGH", t(on_the_date)) is None
    later = on_the_date + timedelta(days=3)
    assert suppressions.matching(Who(), IAM_FAILURE, "HIGH", t(later)) is None


def test_a_record_is_a_subject() -> None:
    record = parse_event(failed_mfa("e1", 0))
    assert pentest().matching(record, IAM_FAILURE, "HIGH", t(BASE)) is not None


# --- the decision path --------------------------------------------------------------------------


def run(
    suppressions: Suppressions, events: list[tuple[str, dict[str, object], float]]
) -> list[Notification]:
    """Deliver each (rule, event, offset) at its event time, then settle everything."""
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, suppressions=suppressions)
    for rule_id, event, offset in events:
        service.handle(rule_id, event, BASE + timedelta(seconds=offset))
    service.flush(BASE + timedelta(hours=2))
    return publisher.sent


def counted(sent: list[Notification]) -> int:
    return sum(n.count for n in sent if n.kind in (KIND_ALERT, KIND_SUMMARY, KIND_STORM))


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


# --- the expiry notice ---------------------------------------------------------------------------


def notices(sent: list[Notification]) -> list[Notification]:
    return [n for n in sent if n.kind == KIND_NOTICE]


def test_one_low_notice_per_suppression_7_days_before_it_expires() -> None:
    expires = date(2026, 11, 20)
    store = MemoryStore()
    publisher = MemoryPublisher()
    service = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    eve = datetime(2026, 11, 12, 23, 59, tzinfo=BASE.tzinfo)
    assert notices(service.tick(eve)) == [], "8 days before: nothing yet"
    (notice,) = notices(service.tick(eve + timedelta(minutes=1)))
    assert (notice.severity, notice.title) == (
        "LOW",
        "Suppression pentest-q4 expires on 2026-11-20 (in 7 days)",
    )
    assert f"pentest-q4 ({OWNER}, {REASON}) stops applying" in notice.summary
    # Later runs, in this environment or a fresh one on the same table: the mark holds.
    assert notices(service.tick(eve + timedelta(minutes=2))) == []
    again = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    assert notices(again.tick(eve + timedelta(days=1))) == []
    assert [n.id for n in publisher.published if n.kind == KIND_NOTICE] == [notice.id]


def test_an_expiry_notice_whose_publish_failed_is_sent_once_by_a_later_run() -> None:
    from chalicelib.core.errors import PublishError

    expires = date(2026, 11, 20)
    store = MemoryStore()
    publisher = MemoryPublisher(failing={"alerts"})
    service = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    week_before = datetime(2026, 11, 13, 9, tzinfo=BASE.tzinfo)
    with pytest.raises(PublishError):
        service.tick(week_before)
    publisher.failing.clear()
    fresh = AlertService(RULES, publisher, store, suppressions=pentest(expires))
    for minute in range(1, 5):
        fresh.tick(week_before + timedelta(minutes=minute))
    assert [n.kind for n in publisher.published] == [KIND_NOTICE]


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


# --- summaries say what they count that a suppression covers -------------------------------------

WITHOUT_MFA = "iam-console-success-without-mfa"
LABEL = f"office-vpn ({OWNER}, {REASON})"


def without_mfa(event_id: str, offset: float, ip: str) -> dict[str, object]:
    """A console sign-in of IAM user alice without MFA (the rule's key leaves the IP out)."""
    envelope: dict[str, Any] = signed_in(event_id, offset, ip=ip)
    envelope["detail"]["additionalEventData"]["MFAUsed"] = "No"
    return envelope


def test_a_summary_says_which_of_its_repeats_are_suppressed_and_never_holds_the_others() -> None:
    office = Suppressions(
        [
            suppression(
                "office-vpn",
                LATER,
                match={"rules": [WITHOUT_MFA], "source_cidrs": ["203.0.113.0/24"]},
            )
        ]
    )
    events: list[tuple[str, dict[str, object], float]] = [
        (WITHOUT_MFA, without_mfa("vpn-1", 0, "203.0.113.5"), 0.0),
        (WITHOUT_MFA, without_mfa("vpn-2", 60, "203.0.113.6"), 60.0),
        (WITHOUT_MFA, without_mfa("cafe", 120, "198.51.100.7"), 120.0),
    ]
    sent = run(office, events)
    # The office sign-in that opened the window is suppressed (the digest counts it); the
    # window's summary counts the other two, goes out for the sign-in from the cafe, and says
    # that the second office sign-in is suppressed.
    (summary,) = [n for n in sent if n.kind == KIND_SUMMARY]
    assert (summary.count, summary.source_ip) == (2, "198.51.100.7")
    assert summary.title == ("2 more sign-ins without MFA for alice from 198.51.100.7")
    assert summary.summary.endswith(
        f"Of these, 1 suppressed by {LABEL}. The alert that opened the window was suppressed "
        f"by {LABEL}."
    )
    (digest,) = [n for n in sent if n.kind == KIND_STORM]
    assert digest.summary.endswith(f"1 suppressed by {LABEL}.")
    assert counted(sent) == 3


def test_a_campaign_names_the_members_a_suppression_covers() -> None:
    events = [
        (IAM_FAILURE, failed_mfa(user, 30.0 * i, user=user), 30.0 * i)
        for i, user in enumerate(["alice", "bob", "carol", "dave"])
    ]
    sent = run(pentest(), events)
    spray, trailing = [n for n in sent if n.principal_type == "campaign"]
    clause = (
        f" Of these principals, 1 suppressed by pentest-q4 ({OWNER}, {REASON}): their own "
        "alerts are held and counted in their rule's digest."
    )
    assert spray.title.startswith("MFA spray from 203.0.113.7: 3 principals")
    assert spray.summary.endswith(clause)
    assert trailing.title == "MFA spray from 203.0.113.7 ended: 4 principals tried"
    assert trailing.summary.endswith(clause)
    alerts = sorted(n.principal for n in sent if n.kind == KIND_ALERT)
    assert alerts == ["bob", "carol", "dave"]
    assert counted(sent) == 4, "alice's failure is counted once, in the digest"

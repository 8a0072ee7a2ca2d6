"""Suppressions' pure matching: near misses, CRITICAL, expiry on an injected clock. Where the
decision path applies them: test_admission.py (held, counted in the digest, never sent as an
alert), test_notices.py (expiry notices), test_looks.py and test_campaign_step.py (what a
summary or a campaign says a suppression covers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from chalicelib.core.records import parse_event
from chalicelib.core.suppressions import Suppressions
from tests.support.events import BASE, IAM_FAILURE, failed_mfa
from tests.support.suppressions import ACCOUNT, LATER, OWNER, REASON, pentest, suppression


@dataclass(frozen=True)
class Who:
    principal: str = "alice"
    account: str = ACCOUNT
    source_ip: str = "203.0.113.7"


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

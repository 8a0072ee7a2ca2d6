"""Decisions become notifications: storm digests (every phase), and the stored form an outbox
keeps and reads back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from chalicelib.core.decisions import StormStats, merge_held
from chalicelib.core.notifications import (
    alert_for,
    notification_from_state,
    storm_digest_for,
)
from chalicelib.core.records import parse_event
from chalicelib.core.rules import RuleSet, load_bundle
from chalicelib.pipeline.admission import held_record
from tests.support.events import BASE, IAM_FAILURE, failed_mfa
from tests.support.suppressions import OWNER, REASON, suppression

RULES: RuleSet = load_bundle()
OPENED = BASE.timestamp()


def stats(**fields: Any) -> StormStats:
    """What a storm held: alice's 3 failed MFA attempts from one IP unless ``fields`` say more."""
    alice = StormStats(
        count=3,
        notifications=2,
        event_ids=("e1", "e2", "e3"),
        principals={"alice": 3},
        ips={"203.0.113.7": 3},
        accounts={"111122223333": 3},
        regions={"us-east-1": 3},
        principal_types={"IAMUser": 3},
        escalated={},
        first=OPENED,
        last=OPENED + 90,
    )
    return replace(alice, **fields)


def test_a_digest_of_held_and_suppressed_names_both() -> None:
    rule = RULES.get(IAM_FAILURE)
    alice = alert_for(rule, parse_event(failed_mfa("a", 0)), ())
    bob = alert_for(rule, parse_event(failed_mfa("b", 1, user="bob")), ())
    held = merge_held([held_record(alice, "pentest-q4"), held_record(bob)], 10)
    label = suppression("pentest-q4", BASE.date() + timedelta(days=30)).label
    digest = storm_digest_for(
        rule, held, opened_at=OPENED, batch=1, phase="held", label_of=lambda _: label
    )
    assert digest.severity == rule.severity, "not only suppressed: the rule's severity"
    assert digest.title.startswith("Held by rate limit: 2 failed MFA attempts")
    assert digest.summary.endswith(f"1 suppressed by pentest-q4 ({OWNER}, {REASON}).")


def test_the_last_digest_of_a_storm_that_held_nothing_more_says_when_it_went_quiet() -> None:
    rule = RULES.get(IAM_FAILURE)
    quiet = OPENED + 3600
    digest = storm_digest_for(
        rule, None, opened_at=OPENED, batch=4, phase="ended", quiet_since=quiet
    )
    assert digest.title == "Alert storm ended: nothing held since the last digest"
    assert (digest.count, digest.event_ids, digest.principal) == (0, (), "nobody")
    assert digest.summary == (
        "No notification was held since the last digest. The storm is over: the rule has been "
        "quiet since 10:00:00 UTC."
    )
    assert digest.first_seen.timestamp() == quiet
    assert (digest.id, digest.dedup_key) == (f"storm:{rule.id}:{OPENED!r}:4", f"storm:{rule.id}")


def test_an_ongoing_digest_names_its_one_principal_and_ip_and_the_next_digest() -> None:
    rule = RULES.get(IAM_FAILURE)
    digest = storm_digest_for(rule, stats(), opened_at=OPENED, batch=1, phase="ongoing")
    assert digest.title == "Alert storm: 3 failed MFA attempts (alice, 203.0.113.7)"
    assert digest.summary.startswith(
        "Rate limit reached: 2 notifications covering 3 failed MFA attempts were held between "
        "09:00:00 and 09:01:30 UTC. 1 distinct principals, 1 distinct source IPs."
    )
    assert digest.summary.endswith(" The storm goes on: the next digest follows.")
    assert (digest.account, digest.region, digest.notes) == ("111122223333", "us-east-1", ())


def test_a_digest_of_escalations_only_counts_no_event_and_lists_fewer_ids_than_it_counts() -> None:
    rule = RULES.get(IAM_FAILURE)
    escalations = stats(
        count=0, event_ids=(), principals={}, ips={}, escalated={"alice": 2, "bob": 1}
    )
    digest = storm_digest_for(rule, escalations, opened_at=OPENED, batch=1, phase="held")
    assert digest.title == "Held by rate limit: 3 escalations held (2 principals)"
    assert "Also held: 3 escalations (brute force / fatigue) for alice (2), bob (1)." in (
        digest.summary
    )
    capped = storm_digest_for(rule, stats(count=30), opened_at=OPENED, batch=1, phase="held")
    assert capped.notes == ("event ids listed: the first 3 of 30",)


def test_a_notification_read_back_from_its_stored_form_is_the_same_notification() -> None:
    rule = RULES.get(IAM_FAILURE)
    alert = alert_for(rule, parse_event(failed_mfa("a", 0)), ("dedup unavailable",))
    digest = storm_digest_for(rule, stats(), opened_at=OPENED, batch=2, phase="held")
    for notification in (alert, digest):
        assert notification_from_state(notification.to_state(), RULES) == notification

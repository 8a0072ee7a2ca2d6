"""Messages a person can act on, and that an attacker cannot forge."""

from __future__ import annotations

import re

from chalicelib.core.notifications import Notification, alert_for
from chalicelib.core.records import parse_event
from chalicelib.core.render import (
    ascii_line,
    clean_text,
    message_attributes,
    render_subject,
    render_text,
)
from chalicelib.core.rules import RuleSet
from tests.conftest import load_event

HOSTILE_UA = (
    "Mozilla/5.0\r\nSubject: fake\r\n\x1b[31mRED\x1b[0m [click](https://evil.example) "
    "<script>alert(1)</script>\u202eevil\u200b" + "A" * 1000
)


def _alert(
    rules: RuleSet, fixture: str = "iam-consolelogin-failure-mfa-yes", **changes: str
) -> Notification:
    event = load_event(fixture)
    event.update(changes)
    record = parse_event(event)
    rule = next(r for r in rules if r.id == "iam-console-mfa-failure")
    return alert_for(rule, record)


def test_subject_is_severity_and_title(rules: RuleSet) -> None:
    assert (
        render_subject(_alert(rules))
        == "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    )


def test_message_names_who_what_when_where_and_what_to_do(rules: RuleSet) -> None:
    text = render_text(_alert(rules), account_name="prod")
    assert "Who:         ops-admin (IAMUser)" in text
    assert "What:        ConsoleLogin (signin.amazonaws.com) Failure; MFA used: yes" in text
    assert "When:        2026-11-02 09:00:08 UTC" in text
    assert "Source IP:   203.0.113.7" in text
    assert "User agent:  Mozilla/5.0 (Windows NT 10.0; Win64; x64)" in text
    assert "Account:     111122223333 (prod), region us-east-1" in text
    assert "MFA:         not reported" in text
    assert "Reason:      Failed authentication" in text
    assert "Event ID:    0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01" in text
    assert (
        "CloudTrail:  https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1"
        "#/events/0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    ) in text
    assert "What to do:\n  1. Ask the user" in text
    assert "dedup key 111122223333|ops-admin|203.0.113.7" in text


def test_hostile_user_agent_cannot_forge_lines_or_escape(rules: RuleSet) -> None:
    notification = _alert(rules, userAgent=HOSTILE_UA)
    text = render_text(notification)
    ua_line = next(line for line in text.splitlines() if line.startswith("User agent:"))
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\u200b" not in text
    assert "Subject: fake" in ua_line  # folded onto the one line, not a new header line
    assert not any(line.startswith("Subject:") for line in text.splitlines())
    assert len(ua_line) <= len("User agent:  ") + 256


def test_hostile_user_name_keeps_subject_one_printable_ascii_line(rules: RuleSet) -> None:
    event = load_event("iam-consolelogin-failure-mfa-yes")
    event["userIdentity"]["userName"] = "évil\r\nBcc: x@example.com\x1b[2J" + "ü" * 300
    record = parse_event(event)
    rule = next(r for r in rules if r.id == "iam-console-mfa-failure")
    subject = render_subject(alert_for(rule, record))
    # SNS: "must be less than 100 characters long" (API_Publish); the long name fills it exactly.
    assert len(subject) == 99 and subject.endswith("...")
    assert re.fullmatch(r"[ -~]+", subject)
    assert subject.startswith("[HIGH] Failed MFA sign-in for IAM user evil Bcc: x@example.com")


def test_clean_text_bounds_and_folds() -> None:
    assert clean_text("a\nb\tc  d") == "a b c d"
    assert clean_text("x" * 10, limit=5) == "xxxx…"
    assert clean_text(None) == ""
    assert ascii_line("ça va\u2028ok", 100) == "ca va ok"


def test_message_attributes_for_filter_policies(rules: RuleSet) -> None:
    attributes = message_attributes(_alert(rules))
    assert {k: v["StringValue"] for k, v in attributes.items()} == {
        "rule": "iam-console-mfa-failure",
        "severity": "HIGH",
        "kind": "alert",
        "account": "111122223333",
        "region": "us-east-1",
        "principal_type": "IAMUser",
    }
    assert all(v["DataType"] == "String" for v in attributes.values())


def test_empty_attribute_values_become_unknown(rules: RuleSet) -> None:
    attributes = message_attributes(_alert(rules, awsRegion=""))
    assert attributes["region"]["StringValue"] == "unknown"

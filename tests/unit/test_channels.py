"""Per-protocol messages, routing to named outputs, hostile input, chat threading."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.channels import (
    SMS_MAX,
    alert_document,
    escape_markdown,
    publish_params,
    render_chat,
    render_sms,
)
from chalicelib.core.config import Output, Settings
from chalicelib.core.errors import PublishError
from chalicelib.core.notifications import Notification, alert_for
from chalicelib.core.records import envelope_of, parse_event
from chalicelib.core.rules import RuleSet
from chalicelib.pipeline.service import AlertService, MemoryPublisher
from tests.conftest import load_event

HOSTILE_UA = (
    "Mozilla/5.0\r\nBcc: victim@example.com\r\n\x1b[31mRED\x1b[0m "
    "[click here](https://evil.example/login) <script>alert(1)</script> <!channel> @here `x` "
    "*bold* _it_ \u202eevil\u200b " + "A" * 600
)
ALERTS = Output("alerts", "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-alerts")
CHAT = Output("chat", "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-chat", format="chat")
SETTINGS = Settings(
    topic_arn=ALERTS.topic_arn,
    account_names={"111122223333": "prod"},
    outputs=(
        ALERTS,
        Output(
            "pager",
            "arn:aws:sns:us-east-1:111122223333:mfawatch-dev-pager",
            min_severity="HIGH",
            kinds=("alert", "escalation", "storm"),
        ),
        CHAT,
    ),
)


def _hostile_alert(rules: RuleSet) -> Notification:
    event = load_event("iam-consolelogin-failure-mfa-yes")
    event["userAgent"] = HOSTILE_UA
    event["userIdentity"]["userName"] = "ops-admin\r\n<b>[x](https://evil.example)</b>\x1b[2J"
    return alert_for(rules.get("iam-console-mfa-failure"), parse_event(event))


def _bodies(params: dict[str, Any]) -> dict[str, str]:
    if params.get("MessageStructure") == "json":
        bodies: dict[str, str] = json.loads(params["Message"])
        return bodies
    return {"chat": params["Message"]}


def test_hostile_user_agent_and_name_leave_every_body_clean(rules: RuleSet) -> None:
    notification = _hostile_alert(rules)
    for output in (ALERTS, CHAT):
        params = publish_params(notification, output, SETTINGS)
        subject = params["Subject"]
        assert re.fullmatch(r"[ -~]{1,100}", subject), subject
        for protocol, body in _bodies(params).items():
            assert "\x1b" not in body and "\r" not in body, protocol
            assert "\u202e" not in body and "\u200b" not in body, protocol
            if protocol in ("default", "email", "sms"):
                # Text: no forged header line, each attacker field stays on its own line.
                assert not any(line.startswith("Bcc:") for line in body.splitlines())
        for value in params["MessageAttributes"].values():
            assert re.fullmatch(r"[ -~]+", value["StringValue"])
    chat = json.loads(publish_params(notification, CHAT, SETTINGS)["Message"])
    text = chat["content"]["title"] + chat["content"]["description"]
    assert "<script>" not in text and "<!channel>" not in text and "<b>" not in text
    # Attacker text is shown verbatim only inside code spans (no backtick can close one early);
    # outside them no markdown link survives.
    outside = re.sub(r"`[^`]*`", "", text)
    assert "](https://evil.example" not in outside and "[click here]" not in outside
    assert (
        "`Mozilla/5.0 Bcc: victim@example.com RED [click here](https://evil.example/login)" in text
    )
    assert "&lt;script&gt;" in text


def test_text_lines_are_bounded(rules: RuleSet) -> None:
    bodies = _bodies(publish_params(_hostile_alert(rules), ALERTS, SETTINGS))
    ua_line = next(line for line in bodies["email"].splitlines() if line.startswith("User agent:"))
    assert len(ua_line) <= len("User agent:  ") + 256


def test_standard_output_has_a_body_per_protocol(rules: RuleSet) -> None:
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))
    notification = alert_for(rules.get("iam-console-mfa-failure"), record)
    params = publish_params(notification, ALERTS, SETTINGS)
    assert params["MessageStructure"] == "json"
    assert params["TopicArn"] == ALERTS.topic_arn
    bodies = _bodies(params)
    assert set(bodies) == {
        "default",
        "email",
        "sms",
        "sqs",
        "lambda",
        "http",
        "https",
        "firehose",
        "email-json",
    }
    assert bodies["default"] == bodies["email"]
    assert "What to do:\n  1. Ask the user" in bodies["email"]
    assert "Account:     111122223333 (prod), region us-east-1" in bodies["email"]
    document = json.loads(bodies["sqs"])
    assert document == json.loads(bodies["lambda"]) == json.loads(bodies["firehose"])
    assert document["schema_version"] == "1"
    assert document["kind"] == "alert" and document["rule"] == "iam-console-mfa-failure"
    assert document["event_ids"] == ["0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"]
    assert document["account"] == {"id": "111122223333", "name": "prod"}
    assert document["event"]["console_url"].endswith(
        "#/events/0b6a3c1e-5a7d-4c43-9f1e-6f4d2a9b8c01"
    )
    assert len(bodies["sms"]) <= SMS_MAX
    assert bodies["sms"] == (
        "[HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7 "
        "acct 111122223333 11-02 09:00Z"
    )


def test_sms_of_a_long_title_stays_within_160(rules: RuleSet) -> None:
    sms = render_sms(_hostile_alert(rules))
    assert len(sms) <= SMS_MAX and sms.endswith("acct 111122223333 11-02 09:00Z")
    assert re.fullmatch(r"[ -~]+", sms)


def test_alert_document_fields_are_the_documented_contract(rules: RuleSet) -> None:
    record = parse_event(load_event("idc-new-credentialverification-totp-failure"))
    document = alert_document(alert_for(rules.get("identity-center-mfa-failure"), record))
    assert set(document) == {
        "schema_version",
        "producer",
        "id",
        "kind",
        "rule",
        "severity",
        "title",
        "summary",
        "description",
        "dedup_key",
        "count",
        "event_ids",
        "first_seen",
        "last_seen",
        "account",
        "region",
        "principal",
        "source_ip",
        "event",
        "cloudtrail_url",
        "runbook",
        "notes",
    }
    assert document["event"]["credential_type"] == "TOTP"
    assert document["event"]["auth_workflow_id"] == "6d1e7c2a-9f3b-4e8d-a1c5-2b7f0e9d4a11"


def test_chat_message_is_a_valid_custom_notification(rules: RuleSet) -> None:
    record = parse_event(load_event("iam-consolelogin-failure-mfa-yes"))
    chat = render_chat(alert_for(rules.get("iam-console-mfa-failure"), record), "prod")
    assert chat["version"] == "1.0" and chat["source"] == "custom"
    content = chat["content"]
    assert content["textType"] == "client-markdown"
    assert (
        content["title"] == "🟠 [HIGH] Failed MFA sign-in for IAM user ops-admin from 203.0.113.7"
    )
    assert "*Who:* `ops-admin` (IAMUser)" in content["description"]
    assert content["nextSteps"] and all(isinstance(s, str) for s in content["nextSteps"])
    assert content["keywords"] == ["HIGH", "iam-console-mfa-failure", "alert", "111122223333"]
    assert chat["metadata"]["threadId"] == "111122223333|ops-admin|203.0.113.7"
    assert chat["metadata"]["eventType"] == "mfawatch.alert"


def test_alert_summary_and_escalation_of_one_incident_share_a_chat_thread(rules: RuleSet) -> None:
    publisher = MemoryPublisher(SETTINGS)
    service = AlertService(rules, publisher, settings=SETTINGS)
    base = load_event("iam-consolelogin-failure-mfa-yes")
    for i in range(12):
        record = dict(base, eventID=f"evt-{i}", eventTime=f"2026-11-02T09:00:{i * 4:02d}Z")
        service.handle(
            "iam-console-mfa-failure", envelope_of(record), datetime(2026, 11, 2, 9, 1, tzinfo=UTC)
        )
    service.flush(datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
    chats = [render_chat(n) for dest, n in publisher.deliveries if dest == "chat"]
    kinds = [c["metadata"]["eventType"] for c in chats]
    assert kinds == ["mfawatch.alert", "mfawatch.escalation", "mfawatch.summary"]
    incident = [c for c in chats if c["metadata"]["eventType"] != "mfawatch.escalation"]
    assert {c["metadata"]["threadId"] for c in incident} == {"111122223333|ops-admin|203.0.113.7"}


def test_routing_by_severity_and_kind(rules: RuleSet) -> None:
    assert SETTINGS.destinations("HIGH", "alert") == ["alerts", "pager", "chat"]
    assert SETTINGS.destinations("HIGH", "summary") == ["alerts", "chat"]
    assert SETTINGS.destinations("MEDIUM", "alert") == ["alerts", "chat"]
    assert SETTINGS.destinations("CRITICAL", "escalation") == ["alerts", "pager", "chat"]


def test_one_failing_output_does_not_block_the_others_and_a_retry_resends_only_it(
    rules: RuleSet,
) -> None:
    publisher = MemoryPublisher(SETTINGS, failing={"pager"})
    service = AlertService(rules, publisher, settings=SETTINGS)
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    now = datetime(2026, 11, 2, 9, 1, tzinfo=UTC)
    with pytest.raises(PublishError, match="pager"):
        service.handle("iam-console-mfa-failure", event, now)
    assert [d for d, _ in publisher.deliveries] == ["alerts", "chat"]
    publisher.failing.clear()
    service.handle("iam-console-mfa-failure", event, now)  # Lambda's retry
    service.handle("iam-console-mfa-failure", event, now)  # and a late duplicate
    assert [d for d, _ in publisher.deliveries] == ["alerts", "chat", "pager"]


def test_events_from_unexpected_accounts_are_flagged_not_dropped(rules: RuleSet) -> None:
    settings = Settings(allowed_accounts=frozenset({"999988887777"}))
    publisher = MemoryPublisher(settings)
    service = AlertService(rules, publisher, settings=settings)
    event = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    (sent,) = service.handle(
        "iam-console-mfa-failure", event, datetime(2026, 11, 2, 9, 1, tzinfo=UTC)
    )
    assert sent.notes == (
        "account 111122223333 is not in MFAWATCH_ALLOWED_ACCOUNTS: an account outside the "
        "Organization (or a new one) is sending sign-in events to this bus",
    )


def test_escape_markdown() -> None:
    assert escape_markdown("[a](http://x) *b* <!here> & `c` ~d~ |e") == (
        "［a］(http://x) ∗b∗ &lt;!here&gt; &amp; ˋcˋ ∼d∼ ¦e"
    )

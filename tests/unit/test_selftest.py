"""The post-deploy self-test on the Lambda side: recognized only as a direct invoke, answered
without touching incident state, publishing one LOW notification per output when asked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.channels import publish_params
from chalicelib.core.config import Output, Settings
from chalicelib.core.constants import HEARTBEAT_PATTERN
from chalicelib.core.notifications import Notification
from chalicelib.core.records import envelope_of
from chalicelib.core.render import render_subject
from chalicelib.core.rules import RuleSet
from chalicelib.core.selftest import (
    SELFTEST_KEY,
    answer,
    is_selftest,
    selftest_event,
    selftest_notification,
)
from mfawatch.patterns.engine import compile_pattern
from tests.conftest import EVENTS, load_event

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ARN = "arn:aws:lambda:us-east-1:111122223333:function:mfawatch-dev-on_iam_console_mfa_failure"


class RecordingPublisher:
    """Returns SNS-like message ids and records what was sent where."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Notification]] = []

    def send(self, notification: Notification, destination: str) -> str:
        self.sent.append((destination, notification))
        return f"message-{len(self.sent)}"


@pytest.mark.parametrize("publish", [False, True])
def test_no_rule_pattern_matches_the_selftest_event(rules: RuleSet, publish: bool) -> None:
    event = selftest_event(publish)
    patterns = {rule.id: rule.event_pattern for rule in rules} | {"heartbeat": HEARTBEAT_PATTERN}
    assert len(patterns) == len(rules) + 1
    assert [i for i, p in patterns.items() if compile_pattern(p).matches(event)] == []


def test_no_eventbridge_envelope_is_taken_for_a_selftest() -> None:
    envelopes = [envelope_of(load_event(path.stem)) for path in sorted(EVENTS.glob("*.json"))]
    assert len(envelopes) > 20
    assert not [e["id"] for e in envelopes if is_selftest(e)]
    # What a PutEvents sender controls lands under detail, never beside it.
    forged = envelope_of(load_event("iam-consolelogin-failure-mfa-yes"))
    forged["detail"][SELFTEST_KEY] = {"version": 1, "publish": True}
    assert not is_selftest(forged)
    assert is_selftest(selftest_event()) and is_selftest(selftest_event(publish=True))
    assert not is_selftest([SELFTEST_KEY]) and not is_selftest(SELFTEST_KEY)


def test_selftest_without_publish_sends_nothing() -> None:
    publisher = RecordingPublisher()
    result = answer(
        selftest_event(),
        function_name="mfawatch-dev-heartbeat",
        function_arn=ARN,
        request_id="req-1",
        publisher=publisher,
        outputs=["alerts"],
        now=NOW,
    )
    assert result == {
        SELFTEST_KEY: 1,
        "function": "mfawatch-dev-heartbeat",
        "initialized": True,
        "published": {},
    }
    assert publisher.sent == []


def test_selftest_with_publish_sends_one_low_notification_to_every_output() -> None:
    publisher = RecordingPublisher()
    name = "mfawatch-dev-on_iam_console_mfa_failure"
    result = answer(
        selftest_event(publish=True),
        function_name=name,
        function_arn=ARN,
        request_id="req-2",
        publisher=publisher,
        outputs=["alerts", "pager"],
        now=NOW,
    )
    assert result["published"] == {"alerts": "message-1", "pager": "message-2"}
    assert [destination for destination, _ in publisher.sent] == ["alerts", "pager"]
    notification = publisher.sent[0][1]
    assert publisher.sent[1][1] is notification  # one notification, sent to each output
    assert (notification.severity, notification.kind, notification.title) == (
        "LOW",
        "selftest",
        "mfawatch self-test",
    )
    assert (notification.account, notification.region) == ("111122223333", "us-east-1")
    assert notification.id == f"selftest:{name}:req-2"


def test_selftest_message_says_what_it_is_and_that_no_sign_in_happened() -> None:
    notification = selftest_notification("mfawatch-dev-x", ARN, "req-3", NOW)
    assert render_subject(notification) == "[LOW] mfawatch self-test"
    settings = Settings(outputs=(Output("alerts", "arn:aws:sns:us-east-1:111122223333:a"),))
    params: dict[str, Any] = publish_params(notification, settings.output("alerts"), settings)
    assert params["Subject"] == "[LOW] mfawatch self-test"
    assert params["MessageAttributes"]["kind"]["StringValue"] == "selftest"
    assert "No sign-in happened" in params["Message"]
    assert "mfawatch-dev-x published this on request req-3" in params["Message"]
